import {
  EventBatch,
  ProbeKind,
  type Subscribe,
} from "./gen/coral/sdk/v1/sdk.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "./_assert.ts";
import { encodeFrame } from "./_framing.ts";
import {
  type FakeAgentOptions,
  noAgent,
  tick,
  withFakeAgent,
  workBatch,
} from "./_test_util.ts";
import * as coral from "./mod.ts";

const workReply = {
  subscriptionId: 1n,
  functionNames: ["coral_work"],
  nargs: 2,
  hasReturn: true,
};

function streaming(
  batches: (
    sub: Subscribe,
  ) =>
    | Iterable<EventBatch | Uint8Array>
    | AsyncIterable<EventBatch | Uint8Array>,
  extra: FakeAgentOptions = {},
): FakeAgentOptions {
  return {
    subscribe: (sub) => ({ reply: workReply, batches: batches(sub) }),
    ...extra,
  };
}

// Batches of coral_work(i, 2i) = 3i forever, as the agent harness's target.
async function* endless(size = 10): AsyncGenerator<EventBatch> {
  for (let i = 1;; i += size) {
    yield workBatch(i, size);
    await tick();
  }
}

function checkWork(events: coral.ProbeEvent[]): void {
  for (const [k, e] of events.entries()) {
    assertEquals(e.functionName, "coral_work");
    assertEquals(e.args.length, 2);
    assertEquals(e.args[1], 2 * e.args[0]);
    assertEquals(e.returnValue, 3 * e.args[0]);
    assert(
      e.durationNs !== null && e.durationNs >= 0,
      `durationNs ${e.durationNs}`,
    );
    if (k > 0) {
      assertEquals(e.args[0], events[k - 1].args[0] + 1, "consecutive calls");
    }
  }
}

Deno.test("trace.uprobe sends Hello then Subscribe with the options, on its own connection", async () => {
  await withFakeAgent(
    streaming(() => [EventBatch.fromPartial({ end: true })]),
    async (agent) => {
      const opts = {
        binary: "/bin/x",
        pid: 7,
        args: 3,
        noReturn: true,
        minDurationNs: 5000,
        sampleRate: 10,
      };
      for await (const _ of coral.trace.uprobe("fn_*", opts)) {
        throw new Error(
          "no events expected",
        );
      }
      assertEquals(agent.connections, 1);
      const [hello, sub] = agent.requests;
      assertEquals(hello.call?.$case, "hello");
      if (hello.call?.$case === "hello") {
        assertEquals(
          hello.call.value.sdkVersion,
          coral.SDK_VERSION,
        );
      }
      assertEquals(sub.call, {
        $case: "subscribe",
        value: {
          kind: ProbeKind.PROBE_KIND_UPROBE,
          name: "fn_*",
          binary: "/bin/x",
          pid: 7,
          config: {
            args: 3,
            noReturn: true,
            minDurationNs: 5000n,
            sampleRate: 10,
          },
        },
      });
    },
  );
});

Deno.test("trace.*: the kind each one subscribes with", async () => {
  const kinds: ProbeKind[] = [];
  await withFakeAgent({
    subscribe: (sub) => {
      kinds.push(sub.kind);
      return {
        reply: workReply,
        batches: [EventBatch.fromPartial({ end: true })],
      };
    },
  }, async () => {
    for await (const _ of coral.trace.uprobe("a"));
    for await (const _ of coral.trace.uretprobe("a"));
    for await (const _ of coral.trace.kprobe("a"));
    for await (const _ of coral.trace.tracepoint("sched:sched_switch"));
  });
  assertEquals(kinds, [
    ProbeKind.PROBE_KIND_UPROBE,
    ProbeKind.PROBE_KIND_URETPROBE,
    ProbeKind.PROBE_KIND_KPROBE,
    ProbeKind.PROBE_KIND_TRACEPOINT,
  ]);
});

Deno.test("trace.*: bad options throw INVALID_ARGUMENT before connecting", () => {
  for (
    const f of [
      () => coral.trace.uprobe("f", { args: 7 }),
      () => coral.trace.uprobe("f", { args: 1.5 }),
      () => coral.trace.uprobe("f", { pid: -1 }),
      () => coral.trace.uprobe(""),
      () => coral.trace.uretprobe("f", { noReturn: true }),
      () => coral.trace.tracepoint("no_colon"),
    ]
  ) {
    const e = assertThrows(f);
    assert(
      e instanceof coral.CoralError && e.code === "INVALID_ARGUMENT",
      String(e),
    );
  }
});

Deno.test("events of several batches, split frames; an end batch ends the loop normally", async () => {
  const batches = [
    workBatch(1, 5),
    workBatch(6, 1),
    EventBatch.fromPartial({}),
    workBatch(7, 100),
    EventBatch.fromPartial({ end: true }),
  ];
  await withFakeAgent(
    streaming(() => batches, { pipe: { maxRead: 13, maxWrite: 50 } }),
    async (agent) => {
      const events: coral.ProbeEvent[] = [];
      for await (const e of coral.trace.uprobe("coral_work", { args: 2 })) {
        events.push(e);
      }
      assertEquals(events.length, 106);
      checkWork(events);
      assertEquals(events[0].args, [1, 2]);
      assertEquals(events[0].pid, 4242);
      assertEquals(events[0].comm, "worker");
      await tick();
      assertEquals(agent.open, 0);
    },
  );
});

Deno.test("an end flag on a batch with events delivers them first", async () => {
  await withFakeAgent(
    streaming(() => [workBatch(1, 3, { end: true })]),
    async () => {
      let n = 0;
      for await (const _ of coral.trace.uprobe("coral_work")) n++;
      assertEquals(n, 3);
    },
  );
});

Deno.test("break, return and throw in for await close the stream's connection", async () => {
  await withFakeAgent(streaming(() => endless()), async (agent) => {
    let n = 0;
    for await (const _ of coral.trace.uprobe("coral_work", { args: 2 })) {
      if (++n === 20) break;
    }
    const firstN = async () => {
      for await (const e of coral.trace.uprobe("coral_work", { args: 2 })) {
        return e;
      }
    };
    assertEquals((await firstN())?.args, [1, 2]);
    const err = await assertRejects(async () => {
      for await (const _ of coral.trace.uprobe("coral_work")) {
        throw new Error("boom");
      }
    });
    assertEquals((err as Error).message, "boom");
    await tick(5);
    assertEquals(agent.detached, 3);
    assertEquals(agent.open, 0);
  });
});

Deno.test("close() ends an iteration that is waiting for events", async () => {
  async function* slow() {
    yield workBatch(1, 1);
    await new Promise(() => {});
  }
  await withFakeAgent(streaming(() => slow()), async (agent) => {
    const stream = coral.trace.uprobe("coral_work");
    const seen: number[] = [];
    const loop = (async () => {
      for await (const e of stream) seen.push(e.args.length);
    })();
    await tick(20);
    stream.close();
    await loop;
    assertEquals(seen.length, 1);
    assertEquals(await stream.next(), { done: true, value: undefined });
    await tick();
    assertEquals(agent.open, 0);
  });
});

Deno.test("two concurrent subscriptions both get their events", async () => {
  await withFakeAgent(streaming(() => endless(3)), async (agent) => {
    const take = async (n: number) => {
      const out: coral.ProbeEvent[] = [];
      for await (const e of coral.trace.uprobe("coral_work", { args: 2 })) {
        if (out.push(e) === n) break;
      }
      return out;
    };
    const [a, b] = await Promise.all([take(30), take(50)]);
    checkWork(a);
    checkWork(b);
    assertEquals(agent.connections, 2);
  });
});

Deno.test("lost: reported once per increase on stderr and kept on the stream", async () => {
  const batches = [
    workBatch(1, 2),
    workBatch(3, 2, { lost: 5n }),
    workBatch(5, 2, { lost: 5n }),
    EventBatch.fromPartial({ lost: 12n }),
    EventBatch.fromPartial({ end: true, lost: 12n }),
  ];
  const logged: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => logged.push(args.join(" "));
  try {
    await withFakeAgent(streaming(() => batches), async () => {
      const stream = coral.trace.uprobe("coral_work");
      let n = 0;
      for await (const _ of stream) n++;
      assertEquals(n, 6);
      assertEquals(stream.lost, 12);
    });
  } finally {
    console.error = original;
  }
  assertEquals(logged, [
    'coral: 5 events dropped for trace.uprobe("coral_work"): the script is slower than its probe',
    'coral: 12 events dropped for trace.uprobe("coral_work"): the script is slower than its probe',
  ]);
});

Deno.test("a subscribe error rejects the loop with the agent's CoralError", async () => {
  await withFakeAgent({}, async (agent) => {
    const e = await assertRejects(async () => {
      for await (const _ of coral.trace.uprobe("nope"));
    });
    assert(e instanceof coral.CoralError && e.code === "NOT_FOUND", String(e));
    const stream = coral.trace.uprobe("nope");
    await assertRejects(stream.ready());
    await tick();
    assertEquals(agent.open, 0);
  });
});

Deno.test("ready() tells what was attached", async () => {
  await withFakeAgent(streaming(() => endless()), async () => {
    const stream = coral.trace.uprobe("coral_work", { args: 2 });
    const info = await stream.ready();
    assertEquals(info.functionNames, ["coral_work"]);
    assertEquals(info.hasReturn, true);
    const first = await stream.next();
    assert(!first.done && first.value.args[0] === 1);
    stream.close();
  });
});

Deno.test("a stream that stops without an end batch rejects with UNAVAILABLE", async () => {
  await withFakeAgent(streaming(() => [workBatch(1, 2)]), async () => {
    let n = 0;
    const e = await assertRejects(async () => {
      for await (const _ of coral.trace.uprobe("coral_work")) n++;
    });
    assertEquals(n, 2);
    assert(
      e instanceof coral.CoralError && e.code === "UNAVAILABLE",
      String(e),
    );
  });
});

Deno.test("a corrupt batch rejects instead of yielding garbage", async () => {
  const garbage = encodeFrame(new Uint8Array([0x12, 0x05, 1, 2, 3, 4, 5]));
  await withFakeAgent(streaming(() => [garbage]), async () => {
    await assertRejects(async () => {
      for await (const _ of coral.trace.uprobe("coral_work"));
    });
  });
});

// With a real agent, whose target calls coral_work(i, 2i, sleep_us) = 3i
// about every millisecond.

Deno.test({
  name: "agent: trace.uprobe(coral_work) yields its calls",
  ignore: noAgent,
  async fn() {
    const target = await coral.target();
    const stream = coral.trace.uprobe("coral_work", { args: 2 });
    const events: coral.ProbeEvent[] = [];
    for await (const e of stream) if (events.push(e) === 50) break;
    assertEquals(events.length, 50);
    if (stream.lost === 0) checkWork(events);
    for (const e of events) {
      assertEquals(e.args[1], 2 * e.args[0]);
      assertEquals(e.returnValue, 3 * e.args[0]);
      assertEquals(e.functionName, "coral_work");
      assert(e.durationNs! >= 0);
      assert(
        Math.abs(e.timestamp.getTime() - Date.now()) < 60_000,
        `timestamp ${e.timestamp.toISOString()}`,
      );
      if (target.pid) assertEquals(e.pid, target.pid);
    }
    await coral.close();
  },
});

Deno.test({
  name:
    "agent: breaking after 20 events detaches, and a new subscription works",
  ignore: noAgent,
  async fn() {
    for (let round = 0; round < 2; round++) {
      let n = 0;
      for await (const _ of coral.trace.uprobe("coral_work", { args: 1 })) {
        if (++n === 20) break;
      }
      assertEquals(n, 20);
    }
  },
});

Deno.test({
  name: "agent: two concurrent subscriptions both get events",
  ignore: noAgent,
  async fn() {
    const take = async (opts: coral.TraceOptions) => {
      const out: coral.ProbeEvent[] = [];
      for await (const e of coral.trace.uprobe("coral_work", opts)) {
        if (out.push(e) === 20) break;
      }
      return out;
    };
    const [a, b] = await Promise.all([
      take({ args: 2 }),
      take({ noReturn: true }),
    ]);
    assertEquals(a.length, 20);
    assertEquals(b.length, 20);
    assert(a.every((e) => e.returnValue === 3 * e.args[0]));
    assert(b.every((e) => e.durationNs === null && e.returnValue === null));
  },
});

Deno.test({
  name: "agent: an unknown function rejects with NOT_FOUND",
  ignore: noAgent,
  async fn() {
    const e = await assertRejects(
      coral.trace.uprobe("coral_no_such_function_xyz").ready(),
    );
    assert(e instanceof coral.CoralError && e.code === "NOT_FOUND", String(e));
  },
});
