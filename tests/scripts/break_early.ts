// Leaves the loop after 10 events, then stays alive so the test can check
// that the probe was detached while the script still runs.
import * as coral from "@coral/sdk";

let seen = 0;
for await (const _ of coral.trace.uprobe("coral_work")) {
  if (++seen === 10) break;
}
console.log(`broke after ${seen}`);
await new Promise((r) => setTimeout(r, 3000));
console.log("done");
