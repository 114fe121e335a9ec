import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { noAgent, withFakeAgent } from "./_test_util.ts";
import * as coral from "./mod.ts";

const work = {
  name: "coral_work",
  symbol: "coral_work",
  address: 0xffffffff81000000n,
  size: 64n,
  binary: "/bin/t",
};

Deno.test("functions.list and get map requests and infos", async () => {
  await withFakeAgent({
    handle: (call) => {
      if (call.$case === "listFunctions") {
        assertEquals(call.value, {
          binary: "/bin/t",
          pattern: "coral_*",
          limit: 5,
        });
        return { $case: "functions", value: { functions: [work], total: 1 } };
      }
      assert(call.$case === "getFunction");
      if (call.value.name === "coral_work") {
        return { $case: "function", value: { function: work } };
      }
      if (call.value.name === "empty") return { $case: "function", value: {} };
      return {
        $case: "error",
        value: { code: "NOT_FOUND", message: "no such function" },
      };
    },
  }, async () => {
    const expected = { ...work, size: 64 };
    assertEquals(
      await coral.functions.list("coral_*", { binary: "/bin/t", limit: 5 }),
      [expected],
    );
    assertEquals(await coral.functions.get("coral_work"), expected);
    for (const name of ["nope", "empty"]) {
      const e = await assertRejects(coral.functions.get(name));
      assert(
        e instanceof coral.CoralError && e.code === "NOT_FOUND",
        String(e),
      );
    }
  });
});

Deno.test({
  name: "agent: functions.list finds coral_work; get(nope) is NOT_FOUND",
  ignore: noAgent,
  async fn() {
    const list = await coral.functions.list("coral_*");
    assert(
      list.some((f) => f.name === "coral_work"),
      JSON.stringify(list.map((f) => f.name)),
    );
    const fn = await coral.functions.get("coral_work");
    assertEquals(fn.name, "coral_work");
    assert(fn.address > 0n && fn.size > 0, `${fn.address} ${fn.size}`);
    const e = await assertRejects(coral.functions.get("nope"));
    assert(e instanceof coral.CoralError && e.code === "NOT_FOUND", String(e));
    await coral.close();
  },
});
