import { EventBatch } from "./gen/coral/sdk/v1/sdk.ts";
import { assert, assertEquals } from "./_assert.ts";
import { decodeEventBatch } from "./_event_batch.ts";
import { ProbeEvent } from "./probe_event.ts";
import { workBatch } from "./_scripted_peer.ts";

function columns(batch: EventBatch, functionNames = ["coral_work"]) {
  const c = decodeEventBatch(EventBatch.encode(batch).finish());
  c.functionNames = functionNames;
  return c;
}

Deno.test("ProbeEvent reads its fields from the batch columns", () => {
  const c = columns(workBatch(10, 3));
  const e = new ProbeEvent(c, 1);
  assertEquals(e.pid, 4242);
  assertEquals(e.tid, 4243);
  assertEquals(e.comm, "worker");
  assertEquals(e.functionName, "coral_work");
  assertEquals(e.args, [11, 22]);
  assert(e.args === e.args, "args is computed once");
  assertEquals(e.returnValue, 33);
  assertEquals(e.durationNs, 1500);
  assertEquals(e.timestampNs, 1_700_000_000_000_000_000n + 11_000_000n);
  assertEquals(e.timestamp.getTime(), 1_700_000_000_000 + 11);
});

Deno.test("ProbeEvent: entry-only events, several functions and comms, big and negative values", () => {
  const b = workBatch(0, 2, {
    hasReturn: [false, true],
    probeIndex: [1, 0],
    commIndex: [1, 0],
    commNames: ["a", "b"],
    nargs: 3,
    args: [-1n, -(2n ** 63n), 2n ** 53n, 0n, 7n, -8n],
    returnValue: [0n, -2n],
    durationNs: [0n, 2n ** 40n],
  });
  const c = columns(b, ["f", "g"]);
  const [x, y] = [new ProbeEvent(c, 0), new ProbeEvent(c, 1)];
  assertEquals(x.durationNs, null);
  assertEquals(x.returnValue, null);
  assertEquals(x.functionName, "g");
  assertEquals(x.comm, "b");
  assertEquals(x.args, [-1, -(2 ** 63), 2 ** 53]);
  assertEquals(y.durationNs, 2 ** 40);
  assertEquals(y.returnValue, -2);
  assertEquals(y.args, [0, 7, -8]);
  assertEquals(y.functionName, "f");
});

Deno.test("ProbeEvent: a function returning nothing has a duration and no return value", () => {
  const c = columns(workBatch(0, 2, { noReturnValue: [true, false] }));
  const [x, y] = [new ProbeEvent(c, 0), new ProbeEvent(c, 1)];
  assertEquals([x.durationNs, x.returnValue], [1500, null]);
  assertEquals([y.durationNs, y.returnValue], [1500, 3]);
  assertEquals(JSON.parse(JSON.stringify(x)).returnValue, null);
});

Deno.test("ProbeEvent serializes and inspects as its fields", () => {
  const e = new ProbeEvent(columns(workBatch(1, 1)), 0);
  const json = JSON.parse(JSON.stringify(e));
  assertEquals(json.timestampNs, "1700000000001000000");
  assertEquals(json.args, [1, 2]);
  assertEquals(json.functionName, "coral_work");
  const shown = Deno.inspect(e, { colors: false });
  assert(
    shown.startsWith("ProbeEvent {") && shown.includes("returnValue: 3"),
    shown,
  );
});
