import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { hasAgent } from "./_real_agent.ts";
import * as coral from "./mod.ts";

Deno.test({
  name:
    "agent: functions.list finds coral_work in the target; limit and binary",
  ignore: !hasAgent,
  async fn() {
    const { binary } = await coral.target();
    const list = await coral.functions.list("coral_*");
    const work = list.find((f) => f.name === "coral_work");
    assert(work !== undefined, JSON.stringify(list.map((f) => f.name)));
    assert(list.every((f) => f.name.startsWith("coral_")));
    assertEquals(typeof work.size, "number");
    assertEquals(typeof work.address, "bigint");
    assert(work.address > 0n && work.size > 0, `${work.address} ${work.size}`);
    assertEquals(
      await coral.functions.list("coral_w*", { binary, limit: 1 }),
      [work],
    );
    assertEquals(
      (await coral.functions.list("", { limit: 3 })).length,
      3,
    );
    await coral.close();
  },
});

Deno.test({
  name: "agent: functions.get(coral_work) matches list; get(nope) is NOT_FOUND",
  ignore: !hasAgent,
  async fn() {
    const { binary } = await coral.target();
    const fn = await coral.functions.get("coral_work", { binary });
    assertEquals(fn.name, "coral_work");
    assertEquals(
      (await coral.functions.list("coral_work")).find((f) =>
        f.name === "coral_work"
      ),
      fn,
    );
    const e = await assertRejects(coral.functions.get("coral_nope_xyz"));
    assert(e instanceof coral.CoralError && e.code === "NOT_FOUND", String(e));
    const nobin = await assertRejects(
      coral.functions.list("*", { binary: "/nonexistent/coral_binary" }),
    );
    assert(nobin instanceof coral.CoralError, String(nobin));
    await coral.close();
  },
});
