// Asks the agent about probe events stored by an earlier probe session.
import * as coral from "@coral/sdk";

const p50 = await coral.metrics.getPercentile("payments", "ProcessPayment", 0.5);
const p99 = await coral.metrics.getPercentile("payments", "ProcessPayment", 99);
const errorRate = await coral.metrics.getErrorRate("payments", { function: "ProcessPayment" });
const slow = await coral.traces.findSlow("payments", { function: "ProcessPayment", minDurationMs: 90, limit: 10 });
const errors = await coral.traces.findErrors("payments", { function: "ProcessPayment" });
const top2 = await coral.traces.findSlow("payments", { limit: 2 });
const rows = await coral.db.query("SELECT count(*) AS n FROM probe_events WHERE function_name = 'ProcessPayment'");
const fns = (await coral.functions.list("Process*", { binary: (await coral.params()).binary })).map((f) => f.name);
const cpu = await coral.system.getCPU();
const mem = await coral.system.getMemory();
let writeRefused = "";
try {
  await coral.db.query("DELETE FROM probe_events");
} catch (e) {
  writeRefused = (e as Error).message;
}
await coral.emit("analytics", {
  p50, p99, errorRate,
  slow: slow.map((s) => [s.args[1], s.durationNs]),
  errors: errors.map((s) => [s.args[1], s.returnValue]),
  top2: top2.map((s) => s.durationNs),
  rows: rows.rows, fns, cpuOk: cpu.usagePercent >= 0 && cpu.usagePercent <= 100 && cpu.cores > 0,
  memOk: mem.usedBytes > 0 && mem.usedBytes < mem.totalBytes, writeRefused,
});
