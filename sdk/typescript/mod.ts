/**
 * `@coral/sdk`: the API of coral-probe scripts. A script is started by
 * `coral run` with the agent's socket in `CORAL_SOCKET`; it attaches probes
 * with `trace.*`, iterates over their events, and reports with `emit`.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * for await (const event of coral.trace.uprobe("ProcessPayment")) {
 *   if (event.durationNs! > 500_000_000) {
 *     await coral.emit("slow_payment", { pid: event.pid, durationMs: event.durationNs! / 1e6 });
 *   }
 * }
 * ```
 *
 * @module
 */

/** Attach probes and iterate over their events: `trace.uprobe(fn)` and friends. */
export * as trace from "./trace.ts";
export type {
  ProbeStream,
  Subscription,
  TraceOptions,
  UsdtOptions,
} from "./trace.ts";
export { ProbeEvent, type ProbeEventFields } from "./probe_event.ts";
export { emit, type Severity } from "./emit.ts";
/** Read-only SQL over the agent's store: `db.query(sql)`. */
export * as db from "./db.ts";
/** Percentiles and error rates of recorded calls. */
export * as metrics from "./metrics.ts";
/** Recorded calls (spans): the slowest, the failed. */
export * as traces from "./traces.ts";
/** The host's CPU and memory. */
export * as system from "./system.ts";
/** The functions of a binary that can be probed. */
export * as functions from "./functions.ts";
export { close, params, target } from "./script.ts";
export { SDK_VERSION } from "./_client.ts";
export * from "./types.ts";
