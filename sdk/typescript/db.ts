// db.query(): read-only SQL over the agent's store.

import { request } from "./_client.ts";
import type { QueryResult } from "./types.ts";

/** Options of {@linkcode query}. */
export interface QueryOptions {
  /** The agent cancels the query after this long; 0 or absent: its default. */
  timeoutMs?: number;
}

/**
 * Runs a read-only SQL statement on the agent's database (writes are
 * refused with a {@linkcode CoralError}). It sees this run's own rows of
 * `scripts`, `script_executions`, `script_logs` and `emitted_events`, and
 * the probe data (`probe_sessions`, `probe_events`,
 * `system_metrics_local`); anything else is `PERMISSION_DENIED`. At most
 * 10,000 rows come back, `truncated` tells when there were more; a reply
 * past 16 MiB is `RESOURCE_EXHAUSTED`.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const { rows } = await coral.db.query(
 *   "SELECT name, severity FROM emitted_events ORDER BY timestamp DESC LIMIT 5",
 * );
 * for (const row of rows) console.log(row.name, row.severity);
 * ```
 */
export async function query(
  sql: string,
  opts: QueryOptions = {},
): Promise<QueryResult> {
  const reply = await request(
    { $case: "query", value: { sql, timeoutMs: opts.timeoutMs ?? 0 } },
    "query",
  );
  const rows = reply.rowsJson === ""
    ? []
    : JSON.parse(reply.rowsJson) as Record<string, unknown>[];
  return { columns: reply.columns, rows, truncated: reply.truncated };
}
