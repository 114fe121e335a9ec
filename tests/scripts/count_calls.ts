// Counts the calls of the function named by --param function in the script's target.
import * as coral from "@coral/sdk";

const fn = (await coral.params()).function;
let events = 0;
for await (const _ of coral.trace.uprobe(fn)) events++;
await coral.emit("calls", { function: fn, events });
