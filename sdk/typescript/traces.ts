// traces.*: look up recorded calls (spans).

import type { Span as SpanMessage } from "./gen/coral/sdk/v1/sdk.ts";
import { request } from "./_client.ts";
import type { Span } from "./types.ts";

/** Options of {@linkcode findSlow}. */
export interface FindSlowOptions {
  /** Only this function; all of the service's by default. */
  function?: string;
  /** Only calls at least this long. */
  minDurationMs?: number;
  /** Default: one hour. */
  windowMs?: number;
  /** At most this many spans; 0 or absent: the agent's default. */
  limit?: number;
}

/** Options of {@linkcode findErrors}. */
export type FindErrorsOptions = Omit<FindSlowOptions, "minDurationMs">;

function toSpan(s: SpanMessage): Span {
  return {
    function: s.function,
    service: s.service,
    pid: s.pid,
    tid: s.tid,
    timestamp: new Date(Number(s.timestampNs / 1_000_000n)),
    timestampNs: s.timestampNs,
    durationNs: Number(s.durationNs),
    returnValue: Number(s.returnValue),
    args: s.args.map(Number),
  };
}

async function find(
  which: "findSlow" | "findErrors",
  service: string,
  opts: FindSlowOptions,
): Promise<Span[]> {
  const reply = await request({
    $case: which,
    value: {
      service,
      function: opts.function ?? "",
      minDurationNs: BigInt(Math.round((opts.minDurationMs ?? 0) * 1e6)),
      windowMs: BigInt(Math.trunc(opts.windowMs ?? 0)),
      limit: opts.limit ?? 0,
    },
  }, "spans");
  return reply.spans.map(toSpan);
}

/**
 * The slowest recorded calls of `service` (named as for
 * `metrics.getPercentile`; an unknown one rejects with NOT_FOUND), slowest
 * first.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const spans = await coral.traces.findSlow("payments", { minDurationMs: 500, limit: 10 });
 * for (const s of spans) console.log(s.function, s.durationNs / 1e6, "ms");
 * ```
 */
export function findSlow(
  service: string,
  opts: FindSlowOptions = {},
): Promise<Span[]> {
  return find("findSlow", service, opts);
}

/**
 * Recorded calls of `service` that returned non-zero, newest first.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const spans = await coral.traces.findErrors("payments", { function: "ProcessPayment" });
 * console.log(spans.map((s) => s.returnValue));
 * ```
 */
export function findErrors(
  service: string,
  opts: FindErrorsOptions = {},
): Promise<Span[]> {
  return find("findErrors", service, opts);
}
