import { assert, assertRejects } from "./_assert.ts";
import { hasAgent, serviceOf } from "./_real_agent.ts";
import * as coral from "./mod.ts";

// The agent computes these from the probe events it stored (those of
// `coral probe attach` sessions); a script's own subscriptions store none,
// but their sessions name the service: the answers may be 0, so shapes and
// bounds are checked. A service the agent does not know is an error.

/** The target's service, known to the agent once a probe of it has a session. */
async function probedService(): Promise<string> {
  const probe = coral.trace.uprobe("coral_work");
  await probe.ready();
  probe.close();
  return serviceOf((await coral.target()).binary);
}

/** Rejected as a service the agent does not know, naming `known` among those it does. */
async function checkUnknown(answer: Promise<unknown>, known: string) {
  const e = await assertRejects(answer);
  assert(
    e instanceof coral.CoralError && e.code === "NOT_FOUND" &&
      e.message.includes("unknown service 'coral_no_service': known: ") &&
      e.message.includes(known),
    String(e),
  );
}

Deno.test({
  name: "agent: metrics.getPercentile answers a duration in ns",
  ignore: !hasAgent,
  async fn() {
    const service = await probedService();
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
    await checkUnknown(
      coral.metrics.getPercentile("coral_no_service", "coral_work", 0.5),
      service,
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
    const service = await probedService();
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
    await checkUnknown(coral.metrics.getErrorRate("coral_no_service"), service);
    await coral.close();
  },
});
