import type { FindSpans } from "./gen/coral/sdk/v1/sdk.ts";
import { assert, assertEquals } from "./_assert.ts";
import { noAgent, withFakeAgent } from "./_test_util.ts";
import * as coral from "./mod.ts";

Deno.test("traces.findSlow and findErrors map options and spans", async () => {
  const asked: [string, FindSpans][] = [];
  await withFakeAgent({
    handle: (call) => {
      assert(call.$case === "findSlow" || call.$case === "findErrors");
      asked.push([call.$case, call.value]);
      return {
        $case: "spans",
        value: {
          spans: [{
            function: "f",
            service: "svc",
            pid: 1,
            tid: 2,
            timestampNs: 1_700_000_000_123_456_789n,
            durationNs: 5_000_000n,
            returnValue: -1n,
            args: [1n, -2n],
          }],
        },
      };
    },
  }, async () => {
    const [span] = await coral.traces.findSlow("svc", {
      function: "f",
      minDurationMs: 1.5,
      windowMs: 10,
      limit: 3,
    });
    assertEquals(span, {
      function: "f",
      service: "svc",
      pid: 1,
      tid: 2,
      timestamp: new Date(1_700_000_000_123),
      timestampNs: 1_700_000_000_123_456_789n,
      durationNs: 5_000_000,
      returnValue: -1,
      args: [1, -2],
    });
    await coral.traces.findErrors("svc");
  });
  assertEquals(asked, [
    ["findSlow", {
      service: "svc",
      function: "f",
      minDurationNs: 1_500_000n,
      windowMs: 10n,
      limit: 3,
    }],
    ["findErrors", {
      service: "svc",
      function: "",
      minDurationNs: 0n,
      windowMs: 0n,
      limit: 0,
    }],
  ]);
});

Deno.test({
  name: "agent: traces.findSlow answers with spans",
  ignore: noAgent,
  async fn() {
    const { binary } = await coral.target();
    const service = binary.split("/").pop() ?? "";
    const spans = await coral.traces.findSlow(service, {
      function: "coral_work",
      limit: 5,
    });
    assert(Array.isArray(spans) && spans.length <= 5);
    for (const s of spans) assertEquals(s.function, "coral_work");
    assert(Array.isArray(await coral.traces.findErrors(service, { limit: 5 })));
    await coral.close();
  },
});
