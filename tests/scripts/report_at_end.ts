// Counts the calls of --param function (default coral_tick) until its stream ends, then reports:
// what a script does after its loop must happen at every stop.
// --param ignoreEnd=1: keeps running after the loop (a script the grace period must end).
import * as coral from "@coral/sdk";

const params = await coral.params();
const probe = coral.trace.uprobe(params.function ?? "coral_tick");
await probe.ready();
console.log("subscribed");
let events = 0;
for await (const _ of probe) events++;
await coral.emit("final", { events, lost: probe.lost });
console.log("reported");
if (params.ignoreEnd) {
  while (true) await new Promise((r) => setTimeout(r, 1000));
}
