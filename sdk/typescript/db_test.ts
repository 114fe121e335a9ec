import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { hasAgent } from "./_real_agent.ts";
import * as coral from "./mod.ts";

Deno.test({
  name:
    "agent: db.query returns columns and rows; big integers as strings, NULL as null",
  ignore: !hasAgent,
  async fn() {
    const r = await coral.db.query(
      "SELECT * FROM (VALUES (1, 'x'), (9007199254740993, NULL)) AS t(a, b) ORDER BY a",
    );
    assertEquals(r, {
      columns: ["a", "b"],
      rows: [{ a: 1, b: "x" }, { a: "9007199254740993", b: null }],
      truncated: false,
    });
    await coral.close();
  },
});

Deno.test({
  name: "agent: db.query: no rows is [], more than 10,000 is truncated",
  ignore: !hasAgent,
  async fn() {
    const none = await coral.db.query("SELECT 1 AS one WHERE false");
    assertEquals(none, { columns: ["one"], rows: [], truncated: false });
    const many = await coral.db.query("SELECT range AS n FROM range(10001)");
    assertEquals(many.rows.length, 10_000);
    assertEquals(many.truncated, true);
    assertEquals(many.rows[9_999], { n: 9_999 });
    await coral.close();
  },
});

Deno.test({
  name: "agent: db.query gives up after timeoutMs",
  ignore: !hasAgent,
  async fn() {
    const t0 = Date.now();
    const e = await assertRejects(
      coral.db.query(
        "SELECT sum(hash(x)) FROM range(1000000000000) AS t(x)",
        { timeoutMs: 200 },
      ),
    );
    assert(e instanceof coral.CoralError, String(e));
    assert(e.message.includes("timed out"), e.message);
    assert(Date.now() - t0 < 5_000, `took ${Date.now() - t0} ms`);
    await coral.close();
  },
});

Deno.test({
  name: "agent: db.query refuses writes and bad SQL with CoralError",
  ignore: !hasAgent,
  async fn() {
    for (
      const sql of [
        "DELETE FROM emitted_events",
        "CREATE TABLE sdk_test_t (x INTEGER)",
        "DROP TABLE emitted_events",
        "SELECT 1; SELECT 2",
        "SELEC nonsense",
      ]
    ) {
      const e = await assertRejects(coral.db.query(sql));
      assert(
        e instanceof coral.CoralError && e.code === "INVALID_ARGUMENT",
        `${sql}: ${e}`,
      );
    }
    await coral.close();
  },
});
