import { assert, assertEquals } from "./_assert.ts";
import { noAgent, withFakeAgent } from "./_test_util.ts";
import * as coral from "./mod.ts";

Deno.test("params() and target() come from the HelloReply", async () => {
  await withFakeAgent({
    params: { threshold: "5" },
    target: { binary: "/usr/bin/app", pid: 99 },
  }, async (agent) => {
    assertEquals(await coral.params(), { threshold: "5" });
    assertEquals(await coral.target(), { binary: "/usr/bin/app", pid: 99 });
    assertEquals(agent.connections, 1);
    assertEquals(agent.requests.length, 1);
  });
});

Deno.test({
  name: "agent: target() names the traced process",
  ignore: noAgent,
  async fn() {
    const t = await coral.target();
    assert(t.pid > 0 && t.binary !== "", JSON.stringify(t));
    assertEquals(typeof (await coral.params()), "object");
    await coral.close();
  },
});
