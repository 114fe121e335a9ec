// Tries each probe of params.attempts (a JSON list of {call, name, opts})
// and emits, per attempt, whether the agent allowed it or the error's code
// and message. A subscription allowed is closed at once.
import * as coral from "@coral/sdk";

type Attempt = { call: string; name: string; opts?: Record<string, unknown> };
const attempts: Attempt[] = JSON.parse((await coral.params()).attempts);
const results = [];
for (const { call, name, opts = {} } of attempts) {
  try {
    if (call === "list") {
      await coral.functions.list(name, opts);
    } else if (call === "get") {
      await coral.functions.get(name, opts);
    } else {
      const trace = coral.trace as unknown as Record<string, (n: string, o: unknown) => coral.ProbeStream>;
      const stream = trace[call](name, opts);
      try {
        await stream.ready();
      } finally {
        stream.close();
      }
    }
    results.push({ call, name, ok: true });
  } catch (e) {
    const code = e instanceof coral.CoralError ? e.code : "NOT_A_CORAL_ERROR";
    results.push({ call, name, code, message: (e as Error).message });
  }
}
await coral.emit("policy_results", results);
