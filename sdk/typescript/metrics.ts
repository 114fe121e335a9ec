// metrics.*: aggregates over the function-level spans the agent recorded.

import { request } from "./_client.ts";

/**
 * The `p` percentile of `metric`'s (a function's) duration in `service`, in
 * nanoseconds, over the last `windowMs` (default: one hour). `p` is 0-1
 * (0.99) or 0-100 (99); 0 without calls.
 *
 * A service is named by `coral agent start --service NAME=BINARY` or
 * `coral probe attach --service NAME`, else it is the probed binary's
 * basename; one the agent does not know rejects with a `CoralError` of code
 * NOT_FOUND listing the known ones. The value is read from the agent's
 * latency sketch (a DDSketch, which `coral query metrics` merges across
 * agents): within 1% relative error of the exact value of rank
 * floor(p (n - 1)) of the n sorted durations.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const p99 = await coral.metrics.getPercentile("payments", "ProcessPayment", 0.99, 60_000);
 * console.log(`p99: ${p99 / 1e6} ms`);
 * ```
 */
export async function getPercentile(
  service: string,
  metric: string,
  p: number,
  windowMs = 0,
): Promise<number> {
  const reply = await request({
    $case: "getPercentile",
    value: {
      service,
      metric,
      percentile: p,
      windowMs: BigInt(Math.trunc(windowMs)),
    },
  }, "percentile");
  return reply.valueNs;
}

/** Options of {@linkcode getErrorRate}. */
export interface ErrorRateOptions {
  /** Only this function; all of the service's by default. */
  function?: string;
  /** Default: one hour. */
  windowMs?: number;
}

/**
 * The share (0-1) of calls in `service` that returned non-zero, over the
 * last `windowMs` (default: one hour); an unknown service rejects with
 * NOT_FOUND, as for {@linkcode getPercentile}.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const rate = await coral.metrics.getErrorRate("payments", { function: "ProcessPayment" });
 * if (rate > 0.01) await coral.emit("payment_errors", { rate }, "error");
 * ```
 */
export async function getErrorRate(
  service: string,
  opts: ErrorRateOptions = {},
): Promise<number> {
  const reply = await request({
    $case: "getErrorRate",
    value: {
      service,
      function: opts.function ?? "",
      windowMs: BigInt(Math.trunc(opts.windowMs ?? 0)),
    },
  }, "errorRate");
  return reply.rate;
}
