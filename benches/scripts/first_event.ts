// Start-up to the first probe event: prints, from inside the loop body, the
// wall-clock time the script saw its first event and the event's own
// (kernel) timestamp, then leaves the loop.
import * as coral from "@coral/sdk";

const { binary } = await coral.params();
for await (const e of coral.trace.uprobe("coral_work", { binary })) {
  const seenMs = performance.timeOrigin + performance.now();
  console.log(`first_event_ms ${seenMs} probe_hit_ms ${Number(e.timestampNs) / 1e6}`);
  break;
}
