// Prints `lines` numbered lines to stdout as fast as it can (1,000 per
// write), after `wait_ms` (time for a follower to connect first).
import * as coral from "@coral/sdk";

const params = await coral.params();
const total = Number(params.lines);
await new Promise((resolve) => setTimeout(resolve, Number(params.wait_ms ?? 0)));
const enc = new TextEncoder();
for (let i = 0; i < total; i += 1000) {
  let text = "";
  for (let j = i; j < Math.min(total, i + 1000); j++) text += `line ${j}\n`;
  const bytes = enc.encode(text);
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}
