// Leaves its loop after 10 events and ends at once, while the agent is still
// detaching the probe.
import * as coral from "@coral/sdk";

let seen = 0;
for await (const _ of coral.trace.uprobe("coral_work")) {
  if (++seen === 10) break;
}
console.log(`broke after ${seen}`);
