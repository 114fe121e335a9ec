// Counts the hits of the USDT marker named by --param marker in the script's
// target, with the sum of each argument; says "subscribed" once the probe is
// attached. A marker's events have no duration: counted if one had.
import * as coral from "@coral/sdk";

const { marker } = await coral.params();
const stream = coral.trace.usdt(marker);
const { functionNames, nargs, hasReturn } = await stream.ready();
console.log("subscribed");
let events = 0;
let withDuration = 0;
const sums: number[] = new Array(nargs).fill(0);
for await (const event of stream) {
  events++;
  event.args.forEach((v, i) => sums[i] += v);
  if (event.durationNs !== null || event.returnValue !== null) withDuration++;
}
await coral.emit("usdt", { marker, functionNames, nargs, hasReturn, events, sums, withDuration });
