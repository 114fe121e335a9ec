// Throughput of a trace stream through `for await`, decoding included, fed
// pre-encoded frames by the scripted byte peer in memory (no socket, no
// agent): `deno bench --import-map=import_map.json --no-remote --no-npm
// --allow-env trace_bench.ts`. Target: > 2M events/s. Not a *_test.ts file,
// so `deno test` does not run it.

import { encodeFrame } from "./_framing.ts";
import { EventBatch } from "./gen/coral/sdk/v1/sdk.ts";
import {
  batchFrame,
  streamScript,
  withScriptedPeer,
  workBatch,
} from "./_scripted_peer.ts";
import * as coral from "./mod.ts";

const EVENTS_PER_BATCH = 4096;
const BATCHES = 250;
const frame = encodeFrame(
  EventBatch.encode(workBatch(1, EVENTS_PER_BATCH)).finish(),
);
const frames = [
  ...Array.from({ length: BATCHES }, () => frame),
  batchFrame({ end: true }),
];
const script = () => [streamScript(frames, { pipe: { highWater: 1 << 20 } })];

Deno.bench(
  `for await over ${
    EVENTS_PER_BATCH * BATCHES
  } events, reading pid and durationNs`,
  async (b) => {
    await withScriptedPeer(script(), async () => {
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
    await withScriptedPeer(script(), async () => {
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
