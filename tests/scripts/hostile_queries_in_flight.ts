// Ends while a long query is still running in the agent.
import * as coral from "@coral/sdk";

const slow = "SELECT count(*) AS n FROM range(100000000000) a";
for (let i = 0; i < 4; i++) {
  coral.db.query(slow, { timeoutMs: 30000 }).catch(() => {});
}
await new Promise((r) => setTimeout(r, 1000)); // the first query is running by now
console.log("leaving with queries in flight");
Deno.exit(0);
