import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { hasAgent, serviceOf } from "./_real_agent.ts";
import * as coral from "./mod.ts";

// Spans come from the probe events the agent stored (those of `coral probe
// attach` sessions); a script's own subscriptions store none, but their
// sessions name the service: with no events the answers are [], so bounds
// are checked. A service the agent does not know is an error.

/** The target's service, known to the agent once a probe of it has a session. */
async function probedService(): Promise<string> {
  const probe = coral.trace.uprobe("coral_work");
  await probe.ready();
  probe.close();
  return serviceOf((await coral.target()).binary);
}

function checkSpan(s: coral.Span, service: string): void {
  assertEquals(s.function, "coral_work");
  assert(s.service.length > 0, `service of ${service}: ${s.service}`);
  assert(s.pid > 0 && s.tid > 0, `${s.pid} ${s.tid}`);
  assert(s.timestamp instanceof Date);
  assertEquals(typeof s.timestampNs, "bigint");
  assertEquals(s.timestamp.getTime(), Number(s.timestampNs / 1_000_000n));
  assert(s.durationNs >= 0, `durationNs ${s.durationNs}`);
  assert(Array.isArray(s.args));
}

Deno.test({
  name:
    "agent: traces.findSlow answers at most limit spans, slowest first, of the function asked",
  ignore: !hasAgent,
  async fn() {
    const service = await probedService();
    const spans = await coral.traces.findSlow(service, {
      function: "coral_work",
      minDurationMs: 0,
      limit: 5,
    });
    assert(Array.isArray(spans) && spans.length <= 5, `${spans.length}`);
    for (const [k, s] of spans.entries()) {
      checkSpan(s, service);
      if (k > 0) assert(s.durationNs <= spans[k - 1].durationNs, "sorted");
    }
    const windowed = await coral.traces.findSlow(service, {
      function: "coral_work",
      windowMs: 1,
      limit: 5,
    });
    for (const s of windowed) {
      assert(Date.now() - s.timestamp.getTime() < 60_000, "in the window");
    }
    // No call of the target lasts a day.
    assertEquals(
      await coral.traces.findSlow(service, { minDurationMs: 86_400_000 }),
      [],
    );
    await coral.close();
  },
});

Deno.test({
  name: "agent: traces.findErrors answers non-zero returns, newest first",
  ignore: !hasAgent,
  async fn() {
    const service = await probedService();
    const spans = await coral.traces.findErrors(service, {
      function: "coral_work",
      limit: 5,
    });
    assert(Array.isArray(spans) && spans.length <= 5, `${spans.length}`);
    for (const [k, s] of spans.entries()) {
      checkSpan(s, service);
      assert(s.returnValue !== 0, `returnValue ${s.returnValue}`);
      if (k > 0) assert(s.timestampNs <= spans[k - 1].timestampNs, "sorted");
    }
    const e = await assertRejects(coral.traces.findErrors("coral_no_service"));
    assert(
      e instanceof coral.CoralError && e.code === "NOT_FOUND" &&
        e.message.includes(`unknown service 'coral_no_service': known: `) &&
        e.message.includes(service),
      String(e),
    );
    await coral.close();
  },
});
