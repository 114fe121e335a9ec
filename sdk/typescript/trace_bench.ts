// Throughput of a trace stream through `for await`, decoding included, fed
// from an in-memory fake agent: `deno bench --import-map=import_map.json
// --no-remote --no-npm --allow-env trace_bench.ts`. Target: > 2M events/s.

import { EventBatch } from "./gen/coral/sdk/v1/sdk.ts";
import { encodeFrame } from "./_framing.ts";
import { withFakeAgent, workBatch } from "./_test_util.ts";
import * as coral from "./mod.ts";

const EVENTS_PER_BATCH = 4096;
const BATCHES = 250;
const frame = encodeFrame(
  EventBatch.encode(workBatch(1, EVENTS_PER_BATCH)).finish(),
);
const end = EventBatch.fromPartial({ end: true });

function* batches(): Generator<Uint8Array | EventBatch> {
  for (let i = 0; i < BATCHES; i++) yield frame;
  yield end;
}

const agent = {
  pipe: { highWater: 1 << 20 },
  subscribe: () => ({
    reply: {
      subscriptionId: 1n,
      functionNames: ["coral_work"],
      nargs: 2,
      hasReturn: true,
    },
    batches: batches(),
  }),
};

Deno.bench(
  `for await over ${
    EVENTS_PER_BATCH * BATCHES
  } events, reading pid and durationNs`,
  async (b) => {
    await withFakeAgent(agent, async () => {
      let sum = 0;
      b.start();
      for await (const e of coral.trace.uprobe("coral_work", { args: 2 })) {
        sum += e.pid + e.durationNs!;
      }
      b.end();
      if (sum <= 0) throw new Error("no events");
    });
  },
);

Deno.bench(
  `for await over ${
    EVENTS_PER_BATCH * BATCHES
  } events, reading args and returnValue`,
  async (b) => {
    await withFakeAgent(agent, async () => {
      let sum = 0;
      b.start();
      for await (const e of coral.trace.uprobe("coral_work", { args: 2 })) {
        sum += e.args[1] + e.returnValue!;
      }
      b.end();
      if (sum <= 0) throw new Error("no events");
    });
  },
);
