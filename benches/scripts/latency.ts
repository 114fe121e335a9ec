// Probe hit to loop body: kernel timestamp (wall clock) vs now, per event.
import * as coral from "@coral/sdk";

const lags: number[] = [];
for await (const e of coral.trace.uprobe("coral_work")) {
  const nowNs = (performance.timeOrigin + performance.now()) * 1e6;
  lags.push(nowNs - Number(e.timestampNs) - (e.durationNs ?? 0));
}
lags.sort((a, b) => a - b);
const at = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))];
await coral.emit("latency", { events: lags.length, p50Ns: at(0.5), p99Ns: at(0.99), maxNs: lags[lags.length - 1] });
