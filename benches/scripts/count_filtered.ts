// Pipeline capacity: counts every synthetic event and those passing a filter,
// until `total` events were seen; reports its own receive rate.
import * as coral from "@coral/sdk";

const params = await coral.params();
const total = Number(params.total);
const stream = coral.trace.uprobe(params.probe);
let seen = 0;
let passed = 0;
let first = 0;
for await (const e of stream) {
  if (seen === 0) first = performance.now();
  seen++;
  if (e.durationNs! % 3 === 0) passed++;
  if (seen + stream.lost >= total) break;
}
const seconds = (performance.now() - first) / 1000;
await coral.emit("pipeline", { seen, passed, lost: stream.lost, seconds });
