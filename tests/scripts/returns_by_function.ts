// Per function matched by --param pattern: its calls, how many had a duration,
// and every return value seen, both as the getter and as JSON gives it.
import * as coral from "@coral/sdk";

const pattern = (await coral.params()).pattern;
const seen: Record<string, { calls: number; timed: number; returns: (number | null)[]; json: unknown[] }> = {};
for await (const e of coral.trace.uprobe(pattern)) {
  const s = seen[e.functionName] ??= { calls: 0, timed: 0, returns: [], json: [] };
  s.calls++;
  if (e.durationNs !== null) s.timed++;
  s.returns.push(e.returnValue);
  s.json.push(JSON.parse(JSON.stringify(e)).returnValue);
}
await coral.emit("returns", seen);
