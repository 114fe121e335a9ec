// Public types shared by the namespaces.

/**
 * The agent's error codes, plus `UNAVAILABLE` for a missing or broken
 * connection and `INTERNAL` for a protocol violation.
 */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "DEADLINE_EXCEEDED"
  | "UNAVAILABLE"
  | "INTERNAL";

/**
 * An error the agent answered with, or a failure to reach it.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * try {
 *   await coral.functions.get("no_such_function");
 * } catch (e) {
 *   if (e instanceof coral.CoralError && e.code === "NOT_FOUND") console.log("not there");
 *   else throw e;
 * }
 * ```
 */
export class CoralError extends Error {
  /** One of {@linkcode ErrorCode}; kept a string so a newer agent's codes pass through. */
  readonly code: ErrorCode | (string & Record<never, never>);

  /** Makes an error with the agent's `code` and `message`. */
  constructor(
    code: ErrorCode | (string & Record<never, never>),
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "CoralError";
    this.code = code;
  }

  /** `CODE: message`, as the agent would log it. */
  override toString(): string {
    return `${this.name} ${this.code}: ${this.message}`;
  }
}

/**
 * What the script was started against: `coral run --binary`, `--pid` or
 * `-- COMMAND`. Empty binary or pid 0 where not given.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const { binary, pid } = await coral.target();
 * ```
 */
export interface Target {
  /** Path of the target binary. */
  binary: string;
  /** Process id of the target. */
  pid: number;
}

/**
 * The answer to {@linkcode db.query}.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const { columns, rows, truncated } = await coral.db.query("SELECT 1 AS one");
 * ```
 */
export interface QueryResult {
  /** Column names, in the order of the SELECT. */
  columns: string[];
  /** One object per row, keyed by column; integers past 2^53 are strings. */
  rows: Record<string, unknown>[];
  /** The agent's row cap (10,000) cut the result. */
  truncated: boolean;
}

/**
 * A recorded function call (a span) from {@linkcode traces.findSlow} or
 * {@linkcode traces.findErrors}.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * for (const span of await coral.traces.findSlow("payments", { minDurationMs: 100 })) {
 *   console.log(span.function, span.durationNs / 1e6, "ms");
 * }
 * ```
 */
export interface Span {
  /** The function called. */
  function: string;
  /** The service of its probe session (`--service`, else the probed binary's basename). */
  service: string;
  /** Process id. */
  pid: number;
  /** Thread id. */
  tid: number;
  /** When the call started. */
  timestamp: Date;
  /** `timestamp` in epoch nanoseconds, exactly. */
  timestampNs: bigint;
  /** From entry to return. */
  durationNs: number;
  /** As a signed 64-bit integer. */
  returnValue: number;
  /** The arguments captured, if any. */
  args: number[];
}

/**
 * CPU use of the host, from {@linkcode system.getCPU}.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const { usagePercent, cores } = await coral.system.getCPU();
 * ```
 */
export interface CpuInfo {
  /** All cores, over the agent's last sample interval: 0-100. */
  usagePercent: number;
  /** Online CPUs. */
  cores: number;
  /** Load average over 1 minute. */
  load1: number;
  /** Load average over 5 minutes. */
  load5: number;
  /** Load average over 15 minutes. */
  load15: number;
}

/**
 * Memory of the host, from {@linkcode system.getMemory}.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const { usagePercent } = await coral.system.getMemory();
 * ```
 */
export interface MemoryInfo {
  /** Physical memory. */
  totalBytes: number;
  /** Available for new allocations without swapping (MemAvailable). */
  availableBytes: number;
  /** Total less available. */
  usedBytes: number;
  /** 0-100. */
  usagePercent: number;
}

/**
 * A function symbol that can be probed, from {@linkcode functions.list}.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const fn = await coral.functions.get("coral_work");
 * console.log(fn.binary, fn.address.toString(16), fn.size);
 * ```
 */
export interface FunctionInfo {
  /** Demangled name. */
  name: string;
  /** Symbol as in the binary (mangled for C++ and Rust). */
  symbol: string;
  /** A bigint: kernel addresses do not fit a number. */
  address: bigint;
  /** Code size in bytes. */
  size: number;
  /** The binary (or library) that defines it. */
  binary: string;
}
