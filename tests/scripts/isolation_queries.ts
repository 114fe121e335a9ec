// Runs each SQL statement of params.queries (a JSON list) through db.query
// and emits what came back: the rows, or the error's code and message.
import * as coral from "@coral/sdk";

const params = await coral.params();
await coral.emit("isolation_start", { note: "a row of this run in emitted_events" });
// The agent records this run while Deno starts: wait (bounded) until it has.
for (let i = 0; i < 100; i++) {
  const { rows } = await coral.db.query("SELECT count(*) AS n FROM script_executions");
  if (rows[0].n === 1) break;
  await new Promise((r) => setTimeout(r, 50));
}
const results = [];
for (const sql of JSON.parse(params.queries)) {
  try {
    const { rows } = await coral.db.query(sql);
    results.push({ sql, rows });
  } catch (e) {
    const code = e instanceof coral.CoralError ? e.code : "NOT_A_CORAL_ERROR";
    results.push({ sql, code, message: (e as Error).message });
  }
}
await coral.emit("isolation_results", results);
