import { assert, assertEquals } from "./_assert.ts";
import { countingConnections, hasAgent } from "./_real_agent.ts";
import * as coral from "./mod.ts";

Deno.test({
  name:
    "agent: params() and target() come from the Hello of the control connection",
  ignore: !hasAgent,
  async fn() {
    await coral.close();
    await countingConnections(async (opened) => {
      const params = await coral.params();
      const t = await coral.target();
      assertEquals(opened(), 1);
      assert(
        Object.values(params).every((v) => typeof v === "string"),
        JSON.stringify(params),
      );
      // A copy: changing it changes nothing.
      params.sdk_test = "x";
      assertEquals((await coral.params()).sdk_test, undefined);
      assert(Number.isInteger(t.pid) && t.pid > 0, JSON.stringify(t));
      assert(t.binary.startsWith("/"), t.binary);
      // The target binary is the one whose functions the agent lists.
      assertEquals(
        (await coral.functions.get("coral_work", { binary: t.binary })).name,
        "coral_work",
      );
      assertEquals(opened(), 1);
    });
    await coral.close();
  },
});
