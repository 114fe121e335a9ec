// Counts coral_thread_work events per thread; thread k passes k and calls it N*k times.
import * as coral from "@coral/sdk";

const perThread = new Map<number, { k: number; events: number; mixed: boolean }>();
for await (const e of coral.trace.uprobe("coral_thread_work", { args: 1 })) {
  const seen = perThread.get(e.tid) ?? { k: e.args[0], events: 0, mixed: false };
  seen.events++;
  if (e.args[0] !== seen.k || e.returnValue !== seen.k) seen.mixed = true;
  perThread.set(e.tid, seen);
}
await coral.emit("per_thread", { threads: [...perThread.values()] });
