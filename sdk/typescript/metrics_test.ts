import { assert, assertRejects } from "./_assert.ts";
import { hasAgent, serviceOf } from "./_real_agent.ts";
import * as coral from "./mod.ts";

// The agent computes these from the probe events it stored (those of
// `coral probe attach` sessions); a script's own subscriptions store none,
// so with no session the answers are 0: shapes and bounds are checked.

Deno.test({
  name: "agent: metrics.getPercentile answers a duration in ns",
  ignore: !hasAgent,
  async fn() {
    const service = serviceOf((await coral.target()).binary);
    for (const p of [0.5, 99]) {
      const v = await coral.metrics.getPercentile(service, "coral_work", p);
      assert(
        typeof v === "number" && Number.isFinite(v) && v >= 0,
        `p${p} ${v}`,
      );
    }
    const windowed = await coral.metrics.getPercentile(
      service,
      "coral_work",
      0.99,
      60_000,
    );
    assert(windowed >= 0, `windowed ${windowed}`);
    assert(
      await coral.metrics.getPercentile(
        "coral_no_service",
        "coral_work",
        0.5,
      ) ===
        0,
    );
    // The percentile reaches the agent, which checks its range.
    const e = await assertRejects(
      coral.metrics.getPercentile(service, "coral_work", -1),
    );
    assert(
      e instanceof coral.CoralError && e.code === "INVALID_ARGUMENT",
      String(e),
    );
    await coral.close();
  },
});

Deno.test({
  name: "agent: metrics.getErrorRate answers a share in [0, 1]",
  ignore: !hasAgent,
  async fn() {
    const service = serviceOf((await coral.target()).binary);
    for (
      const rate of [
        await coral.metrics.getErrorRate(service),
        await coral.metrics.getErrorRate(service, {
          function: "coral_work",
          windowMs: 60_000,
        }),
      ]
    ) {
      assert(
        typeof rate === "number" && rate >= 0 && rate <= 1,
        `rate ${rate}`,
      );
    }
    assert(await coral.metrics.getErrorRate("coral_no_service") === 0);
    await coral.close();
  },
});
