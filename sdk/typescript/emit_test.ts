import type { Emit } from "./gen/coral/sdk/v1/sdk.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { noAgent, withFakeAgent } from "./_test_util.ts";
import * as coral from "./mod.ts";

Deno.test("emit sends name, JSON data (bigints as strings) and severity, and returns the id", async () => {
  const sent: Emit[] = [];
  await withFakeAgent({
    handle: (call) => {
      assert(call.$case === "emit");
      sent.push(call.value);
      return { $case: "emit", value: { id: `evt-${sent.length}` } };
    },
  }, async () => {
    assertEquals(
      await coral.emit(
        "slow",
        { pid: 1, ns: 2n ** 70n, nested: { big: -5n } },
        "warning",
      ),
      "evt-1",
    );
    assertEquals(await coral.emit("plain", {}), "evt-2");
  });
  assertEquals(sent[0].name, "slow");
  assertEquals(sent[0].severity, "warning");
  assertEquals(JSON.parse(sent[0].dataJson), {
    pid: 1,
    ns: (2n ** 70n).toString(),
    nested: { big: "-5" },
  });
  assertEquals(sent[1].severity, "info");
  assertEquals(sent[1].dataJson, "{}");
});

Deno.test({
  name: "agent: emit returns an id that emitted_events has",
  ignore: noAgent,
  async fn() {
    const id = await coral.emit("sdk_test", { n: 1, big: 2n ** 64n }, "debug");
    assert(typeof id === "string" && id.length > 0, `id ${id}`);
    const { rows } = await coral.db.query(
      `SELECT name FROM emitted_events WHERE id = '${
        id.replaceAll("'", "''")
      }'`,
    );
    assertEquals(rows.length, 1);
    assertEquals(rows[0].name, "sdk_test");
    await coral.close();
  },
});

Deno.test({
  name: "agent: emit with an unknown severity is rejected",
  ignore: noAgent,
  async fn() {
    // deno-lint-ignore no-explicit-any
    const e = await assertRejects(coral.emit("sdk_test", {}, "loud" as any));
    assert(
      e instanceof coral.CoralError && e.code === "INVALID_ARGUMENT",
      String(e),
    );
    await coral.close();
  },
});
