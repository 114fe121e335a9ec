// Under `coral probe attach --tracepoint sched:sched_switch --script`: the
// session's own tracepoint is allowed, another one is not.
import * as coral from "@coral/sdk";

const results: Record<string, string> = {};
for (const name of ["sched:sched_switch", "sched:sched_wakeup"]) {
  const stream = coral.trace.tracepoint(name);
  try {
    await stream.ready();
    results[name] = "ok";
  } catch (e) {
    results[name] = e instanceof coral.CoralError ? e.code : String(e);
  } finally {
    stream.close();
  }
}
await coral.emit("policy_session", results);
