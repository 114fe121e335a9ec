// Opens a stream and never reads it, then reads a second one to its end.
// With `same=1` both are the same probe (one fan-out), else two probes.
import * as coral from "@coral/sdk";

const same = (await coral.params()).same === "1";
const idle = coral.trace.uprobe("coral_work", { args: same ? 0 : 1 });
await idle.ready();
let n = 0;
for await (const _ of coral.trace.uprobe("coral_work")) n++;
console.log(`the second stream ended after ${n} events`);
