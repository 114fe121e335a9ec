import { assert, assertEquals } from "./_assert.ts";
import { noAgent, withFakeAgent } from "./_test_util.ts";
import * as coral from "./mod.ts";

Deno.test("metrics.getPercentile and getErrorRate map to their requests", async () => {
  await withFakeAgent({
    handle: (call) => {
      if (call.$case === "getPercentile") {
        assertEquals(call.value, {
          service: "svc",
          metric: "fn",
          percentile: 0.99,
          windowMs: 60_000n,
        });
        return { $case: "percentile", value: { valueNs: 1234.5, count: 10n } };
      }
      assert(call.$case === "getErrorRate");
      return {
        $case: "errorRate",
        value: {
          rate: call.value.function === "f" ? 0.25 : 0.5,
          errors: 1n,
          total: 4n,
        },
      };
    },
  }, async () => {
    assertEquals(
      await coral.metrics.getPercentile("svc", "fn", 0.99, 60_000),
      1234.5,
    );
    assertEquals(
      await coral.metrics.getErrorRate("svc", {
        function: "f",
        windowMs: 1000,
      }),
      0.25,
    );
    assertEquals(await coral.metrics.getErrorRate("svc"), 0.5);
  });
});

Deno.test({
  name: "agent: metrics answer with numbers",
  ignore: noAgent,
  async fn() {
    const { binary } = await coral.target();
    const service = binary.split("/").pop() ?? "";
    const p = await coral.metrics.getPercentile(service, "coral_work", 0.5);
    assert(typeof p === "number" && p >= 0, `p50 ${p}`);
    const rate = await coral.metrics.getErrorRate(service);
    assert(typeof rate === "number" && rate >= 0 && rate <= 1, `rate ${rate}`);
    await coral.close();
  },
});
