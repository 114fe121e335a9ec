import { Request } from "./gen/coral/sdk/v1/sdk.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "./_assert.ts";
import { encodeFrame } from "./_framing.ts";
import { checkWork, collect, hasAgent } from "./_real_agent.ts";
import {
  batchFrame,
  HELLO_REPLY,
  streamScript,
  subscribeReplyFrame,
  withScriptedPeer,
  workBatch,
} from "./_scripted_peer.ts";
import * as coral from "./mod.ts";

Deno.test("trace.*: bad options throw INVALID_ARGUMENT before connecting", () => {
  for (
    const f of [
      () => coral.trace.uprobe("f", { args: 7 }),
      () => coral.trace.uprobe("f", { args: 1.5 }),
      () => coral.trace.uprobe("f", { pid: -1 }),
      () => coral.trace.uprobe("f", { sampleRate: 0.5 }),
      () => coral.trace.uprobe(""),
      () => coral.trace.uretprobe("f", { noReturn: true }),
      () => coral.trace.tracepoint("no_colon"),
      () => coral.trace.usdt("no_colon"),
      () => coral.trace.usdt("a:b c"),
      () => coral.trace.usdt("a:b", { args: 2 } as coral.UsdtOptions),
    ]
  ) {
    const e = assertThrows(f);
    assert(
      e instanceof coral.CoralError && e.code === "INVALID_ARGUMENT",
      String(e),
    );
  }
});

// Parsing of event streams, with a scripted peer: exact bytes a real agent
// does not write on purpose.

Deno.test("stream parsing: frames split at every byte, an empty batch, an end batch that carries events", async () => {
  const frames = [
    batchFrame(workBatch(1, 5)),
    batchFrame(workBatch(6, 1)),
    batchFrame({}),
    batchFrame(workBatch(7, 100)),
    batchFrame(workBatch(107, 3, { end: true })),
  ];
  await withScriptedPeer(
    [streamScript(frames, { pipe: { maxRead: 1 } })],
    async (peer) => {
      const events: coral.ProbeEvent[] = [];
      for await (const e of coral.trace.uprobe("coral_work", { args: 2 })) {
        events.push(e);
      }
      assertEquals(events.length, 109);
      checkWork(events);
      assertEquals(events[0].args, [1, 2]);
      assertEquals(events[108].args, [109, 218]);
      assertEquals(events[0].comm, "worker");
      await peer.settled();
      const [conn] = peer.connections;
      assert(conn.closedByClient, "the client closed the ended stream");
      assertEquals(
        conn.frames.map((f) => Request.decode(f).call?.$case),
        ["hello", "subscribe"],
      );
    },
  );
});

Deno.test("stream parsing: a connection closed without an end batch rejects with UNAVAILABLE after its events", async () => {
  await withScriptedPeer(
    [streamScript([batchFrame(workBatch(1, 2))], { hangUp: true })],
    async () => {
      let n = 0;
      const e = await assertRejects(async () => {
        for await (const _ of coral.trace.uprobe("coral_work")) n++;
      });
      assertEquals(n, 2);
      assert(
        e instanceof coral.CoralError && e.code === "UNAVAILABLE",
        String(e),
      );
    },
  );
});

Deno.test("ready(): what it resolves to goes through JSON.stringify and back unchanged", async () => {
  await withScriptedPeer([streamScript([])], async () => {
    const stream = coral.trace.uprobe("coral_work", { args: 2 });
    const info = await stream.ready();
    stream.close();
    assertEquals(
      JSON.stringify(info),
      '{"subscriptionId":1,"functionNames":["coral_work"],"nargs":2,"hasReturn":true}',
    );
    assertEquals(JSON.parse(JSON.stringify(info)), info);
  });
});

Deno.test("ready(): a subscription id past 2^53 is refused, not rounded into another", async () => {
  const unsafe = 2n ** 53n + 1n;
  await withScriptedPeer([{
    steps: [
      { afterFrames: 1, write: [HELLO_REPLY] },
      {
        afterFrames: 2,
        write: [subscribeReplyFrame({ subscriptionId: unsafe })],
      },
    ],
  }], async (peer) => {
    const e = await assertRejects(coral.trace.uprobe("coral_work").ready());
    assert(e instanceof coral.CoralError && e.code === "INTERNAL", String(e));
    assert(e.message.includes(String(unsafe)), e.message);
    await peer.settled();
    assert(peer.connections[0].closedByClient);
  });
});

Deno.test("stream parsing: a corrupt batch rejects instead of yielding garbage", async () => {
  // Five timestamp bytes: not a whole fixed64.
  const corrupt = encodeFrame(new Uint8Array([0x12, 0x05, 1, 2, 3, 4, 5]));
  await withScriptedPeer([streamScript([corrupt])], async (peer) => {
    let n = 0;
    await assertRejects(async () => {
      for await (const _ of coral.trace.uprobe("coral_work")) n++;
    });
    assertEquals(n, 0);
    await peer.settled();
    assert(peer.connections[0].closedByClient);
  });
});

// With the real agent, whose target calls coral_work(i, 2i, sleep_us) = 3i
// about every millisecond.

Deno.test({
  name: "agent: trace.uprobe(coral_work) yields the target's calls",
  ignore: !hasAgent,
  async fn() {
    const target = await coral.target();
    const stream = coral.trace.uprobe("coral_work", { args: 2 });
    const events = await collect(stream, 50);
    assertEquals(events.length, 50);
    checkWork(events, stream.lost);
    const comm = target.binary.split("/").pop()!.slice(0, 15);
    for (const e of events) {
      assertEquals(e.pid, target.pid);
      assert(e.tid > 0);
      assertEquals(e.comm, comm);
      assert(
        Math.abs(e.timestamp.getTime() - Date.now()) < 60_000,
        `timestamp ${e.timestamp.toISOString()}`,
      );
      assertEquals(e.timestampNs / 1_000_000n, BigInt(e.timestamp.getTime()));
    }
    await coral.close();
  },
});

Deno.test({
  name: "agent: ready() tells what was attached, before the first event",
  ignore: !hasAgent,
  async fn() {
    const stream = coral.trace.uprobe("coral_work", { args: 2 });
    const info = await stream.ready();
    assert(
      Number.isSafeInteger(info.subscriptionId) && info.subscriptionId > 0,
      `id ${info.subscriptionId}`,
    );
    assertEquals(JSON.parse(JSON.stringify(info)), info);
    assertEquals(info.functionNames, ["coral_work"]);
    assertEquals(info.nargs, 2);
    assertEquals(info.hasReturn, true);
    assertEquals(await stream.ready(), info);
    const first = await stream.next();
    assert(!first.done);
    checkWork([first.value]);
    stream.close();
    assertEquals(await stream.next(), { done: true, value: undefined });
  },
});

Deno.test({
  name:
    "agent: options reach the probe: args and noReturn, pid and binary, wildcards",
  ignore: !hasAgent,
  async fn() {
    const { binary, pid } = await coral.target();
    const entry = coral.trace.uprobe("coral_work", {
      args: 3,
      noReturn: true,
      pid,
      binary,
    });
    const info = await entry.ready();
    assertEquals(info.nargs, 3);
    assertEquals(info.hasReturn, false);
    const events = await collect(entry, 20);
    assertEquals(events.length, 20);
    for (const e of events) {
      assertEquals(e.pid, pid);
      assertEquals(e.args.length, 3);
      assertEquals(e.args[1], 2 * e.args[0]);
      assert(e.args[2] >= 0, `sleep_us ${e.args[2]}`);
      assertEquals(e.durationNs, null);
      assertEquals(e.returnValue, null);
    }
    // The pid of this test process: the target's calls are not its calls.
    const elsewhere = await collect(
      coral.trace.uprobe("coral_work", { pid: Deno.pid }),
      1,
      500,
    );
    assertEquals(elsewhere.length, 0);
    // Another binary: one that is not there is refused.
    const missing = await assertRejects(
      coral.trace.uprobe("coral_work", { binary: "/nonexistent/coral_bin" })
        .ready(),
    );
    assert(missing instanceof coral.CoralError, String(missing));
    assert(missing.message.includes("/nonexistent/coral_bin"), missing.message);
    const wild = coral.trace.uprobe("coral_w*", { args: 2 });
    assertEquals((await wild.ready()).functionNames, ["coral_work"]);
    checkWork(await collect(wild, 5), wild.lost);
    await coral.close();
  },
});

Deno.test({
  name: "agent: minDurationNs and sampleRate filter in the kernel",
  ignore: !hasAgent,
  async fn() {
    const sampled = coral.trace.uprobe("coral_work", {
      args: 1,
      sampleRate: 10,
    });
    const events = await collect(sampled, 12);
    assertEquals(events.length, 12);
    for (let k = 1; k < events.length; k++) {
      const gap = events[k].args[0] - events[k - 1].args[0];
      assert(gap > 0 && gap % 10 === 0, `gap ${gap}`);
    }
    const min = 500_000;
    for (
      const e of await collect(
        coral.trace.uprobe("coral_work", { minDurationNs: min }),
        10,
      )
    ) {
      assert(e.durationNs! >= min, `durationNs ${e.durationNs}`);
    }
    // No call lasts ten seconds.
    const none = await collect(
      coral.trace.uprobe("coral_work", { minDurationNs: 10e9 }),
      1,
      500,
    );
    assertEquals(none.length, 0);
  },
});

Deno.test({
  name:
    "agent: uretprobe, tracepoint and kprobe subscribe with their own kinds",
  ignore: !hasAgent,
  async fn() {
    const { pid } = await coral.target();
    const ret = coral.trace.uretprobe("coral_work", { args: 2 });
    assertEquals((await ret.ready()).hasReturn, true);
    checkWork(await collect(ret, 5), ret.lost);

    const tp = coral.trace.tracepoint("sched:sched_switch");
    const tpInfo = await tp.ready();
    assertEquals(tpInfo.functionNames, ["sched:sched_switch"]);
    assertEquals(tpInfo.hasReturn, false);
    const switches = await collect(tp, 5);
    assertEquals(switches.length, 5);
    for (const e of switches) {
      assertEquals(e.functionName, "sched:sched_switch");
      assertEquals(e.pid, pid);
      assertEquals(e.durationNs, null);
    }

    // Kernels without kprobes refuse, naming the kernel function.
    const kp = coral.trace.kprobe("do_nanosleep", { noReturn: true });
    try {
      assertEquals((await kp.ready()).functionNames, ["do_nanosleep"]);
    } catch (e) {
      assert(e instanceof coral.CoralError, String(e));
      assert(
        e.message.includes("kernel function do_nanosleep"),
        e.message,
      );
    } finally {
      kp.close();
    }
    await coral.close();
  },
});

Deno.test({
  name:
    "agent: break, return and throw in for await detach; a new subscription works",
  ignore: !hasAgent,
  async fn() {
    const broken = coral.trace.uprobe("coral_work", { args: 2 });
    let n = 0;
    for await (const _ of broken) if (++n === 20) break;
    assertEquals(n, 20);
    assertEquals(await broken.next(), { done: true, value: undefined });

    const first = async () => {
      for await (const e of coral.trace.uprobe("coral_work", { args: 2 })) {
        return e;
      }
    };
    checkWork([(await first())!]);

    const err = await assertRejects(async () => {
      for await (const _ of coral.trace.uprobe("coral_work")) {
        throw new Error("boom");
      }
    });
    assertEquals((err as Error).message, "boom");

    // The connections are closed (the resource sanitizer checks it), and
    // the same probe can be subscribed to again.
    const again = await collect(
      coral.trace.uprobe("coral_work", { args: 2 }),
      20,
    );
    assertEquals(again.length, 20);
  },
});

Deno.test({
  name: "agent: close() ends an iteration that is waiting for events",
  ignore: !hasAgent,
  async fn() {
    // No call lasts ten seconds: this stream waits.
    const stream = coral.trace.uprobe("coral_work", { minDurationNs: 10e9 });
    await stream.ready();
    let seen = 0;
    const loop = (async () => {
      for await (const _ of stream) seen++;
    })();
    await new Promise((r) => setTimeout(r, 200));
    stream.close();
    await loop;
    assertEquals(seen, 0);
    assertEquals(await stream.next(), { done: true, value: undefined });
  },
});

Deno.test({
  name: "agent: two concurrent subscriptions both get their events",
  ignore: !hasAgent,
  async fn() {
    const a = coral.trace.uprobe("coral_work", { args: 2 });
    const b = coral.trace.uprobe("coral_work", { noReturn: true, args: 1 });
    const [ia, ib] = await Promise.all([a.ready(), b.ready()]);
    assert(ia.subscriptionId !== ib.subscriptionId);
    const [ea, eb] = await Promise.all([collect(a, 30), collect(b, 20)]);
    assertEquals(ea.length, 30);
    assertEquals(eb.length, 20);
    checkWork(ea, a.lost);
    assert(eb.every((e) => e.durationNs === null && e.returnValue === null));
  },
});

Deno.test({
  name: "agent: a subscribe error rejects the loop and ready() with CoralError",
  ignore: !hasAgent,
  async fn() {
    const e = await assertRejects(async () => {
      for await (const _ of coral.trace.uprobe("coral_no_such_function_xyz"));
    });
    assert(e instanceof coral.CoralError && e.code === "NOT_FOUND", String(e));
    assert(e.message.includes("coral_no_such_function_xyz"), e.message);
    const stream = coral.trace.uprobe("coral_no_such_function_xyz");
    const again = await assertRejects(stream.ready());
    assert(again instanceof coral.CoralError && again.code === "NOT_FOUND");
    // Iterating it after all rejects with the same error, then ends.
    assertEquals(await assertRejects(stream.next()), again);
    assertEquals(await stream.next(), { done: true, value: undefined });
    const tp = await assertRejects(
      coral.trace.tracepoint("coral_nope:coral_nope").ready(),
    );
    assert(tp instanceof coral.CoralError, String(tp));
  },
});

Deno.test({
  name:
    "agent: a stream left unread loses events: lost counts them, stderr says so once per increase",
  ignore: !hasAgent,
  async fn() {
    const logged: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => logged.push(args.join(" "));
    const stream = coral.trace.uprobe("coral_work", { args: 2 });
    try {
      await stream.ready();
      // The agent queues at most a few hundred events for a subscriber.
      await new Promise((r) => setTimeout(r, 2000));
      let n = 0;
      const t0 = Date.now();
      for await (const _ of stream) {
        if (++n >= 10 && stream.lost > 0) break;
        if (Date.now() - t0 > 10_000) break;
      }
    } finally {
      console.error = original;
      stream.close();
    }
    assert(stream.lost > 0, `lost ${stream.lost}`);
    assert(logged.length > 0, "a warning on stderr");
    const counts = logged.map((line) => {
      const m = line.match(
        /^coral: (\d+) events dropped for trace\.uprobe\("coral_work"\): the script is slower than its probe$/,
      );
      assert(m !== null, line);
      return Number(m[1]);
    });
    for (let k = 1; k < counts.length; k++) {
      assert(counts[k] > counts[k - 1], `increasing: ${counts}`);
    }
    assertEquals(counts[counts.length - 1], stream.lost);
  },
});
