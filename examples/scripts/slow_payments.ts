// The seed example: every call of ProcessPayment reaches this loop; only
// the slow ones are emitted (stored in DuckDB's emitted_events).
import * as coral from "@coral/sdk";

let calls = 0;
let slow = 0;
for await (const event of coral.trace.uprobe("ProcessPayment", { args: 2 })) {
  calls++;
  if (event.durationNs! > 500_000_000) {
    slow++;
    await coral.emit("slow_payment", {
      pid: event.pid,
      customer: event.args[1],
      durationMs: event.durationNs! / 1e6,
    }, "warning");
  }
}
await coral.emit("payments_summary", { calls, slow });
console.log(`saw ${calls} payments, ${slow} slow`);
