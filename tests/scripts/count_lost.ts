// Counts events and reports the iterator's lost count; slow when params say so.
import * as coral from "@coral/sdk";

const params = await coral.params();
const delayMs = Number(params.delayMs ?? "0");
const probe = coral.trace.uprobe("coral_work");
let events = 0;
for await (const _ of probe) {
  events++;
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
}
await coral.emit("count", { label: params.label, events, lost: probe.lost });
