import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { noAgent, withFakeAgent } from "./_test_util.ts";
import * as coral from "./mod.ts";

Deno.test("db.query sends sql and timeout, and parses rowsJson", async () => {
  await withFakeAgent({
    handle: (call) => {
      assert(call.$case === "query");
      assertEquals(call.value, { sql: "SELECT a, b FROM t", timeoutMs: 250 });
      return {
        $case: "query",
        value: {
          columns: ["a", "b"],
          rowsJson: '[{"a":1,"b":"x"},{"a":"9007199254740993","b":null}]',
          rowCount: 2,
          truncated: true,
        },
      };
    },
  }, async () => {
    const r = await coral.db.query("SELECT a, b FROM t", { timeoutMs: 250 });
    assertEquals(r, {
      columns: ["a", "b"],
      rows: [{ a: 1, b: "x" }, { a: "9007199254740993", b: null }],
      truncated: true,
    });
  });
});

Deno.test("db.query: an empty rowsJson is no rows", async () => {
  await withFakeAgent({
    handle: () => ({
      $case: "query",
      value: { columns: [], rowsJson: "", rowCount: 0, truncated: false },
    }),
  }, async () => {
    assertEquals((await coral.db.query("SELECT 1 WHERE 0")).rows, []);
  });
});

Deno.test({
  name: "agent: db.query reads, and refuses writes with CoralError",
  ignore: noAgent,
  async fn() {
    const r = await coral.db.query("SELECT 1 AS one");
    assertEquals(r.columns, ["one"]);
    assertEquals(r.rows, [{ one: 1 }]);
    assertEquals(r.truncated, false);
    for (
      const sql of [
        "DELETE FROM emitted_events",
        "CREATE TABLE sdk_test_t (x)",
        "DROP TABLE emitted_events",
      ]
    ) {
      const e = await assertRejects(coral.db.query(sql));
      assert(e instanceof coral.CoralError, `${sql}: ${e}`);
    }
    const bad = await assertRejects(coral.db.query("SELEC nonsense"));
    assert(bad instanceof coral.CoralError, String(bad));
    await coral.close();
  },
});
