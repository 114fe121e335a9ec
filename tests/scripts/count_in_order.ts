// Counts coral_work events and checks each thread's args arrive in order.
import * as coral from "@coral/sdk";

const last = new Map<number, number>();
let events = 0;
let outOfOrder = 0;
for await (const e of coral.trace.uprobe("coral_work", { args: 2 })) {
  events++;
  const prev = last.get(e.tid) ?? 0;
  if (e.args[0] !== prev + 1 || e.args[1] !== 2 * e.args[0] || e.returnValue !== 3 * e.args[0]) outOfOrder++;
  last.set(e.tid, e.args[0]);
}
await coral.emit("count", { events, outOfOrder });
