// trace.*: attach a probe and iterate over its events. Each stream has its
// own connection, so closing it is what detaches the probe.

import { ProbeKind, Response, type Subscribe } from "./gen/coral/sdk/v1/sdk.ts";
import {
  closedError,
  encodeRequest,
  openSession,
  safeClose,
  type Session,
  unwrap,
} from "./_client.ts";
import { decodeEventBatch, type EventColumns } from "./_event_batch.ts";
import { writeAll } from "./_framing.ts";
import { ProbeEvent } from "./probe_event.ts";
import { CoralError } from "./types.ts";

/**
 * Options of every `trace.*` call.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * coral.trace.uprobe("ProcessPayment", { args: 2, minDurationNs: 1_000_000 });
 * ```
 */
export interface TraceOptions {
  /** Binary to probe; defaults to the script's target. */
  binary?: string;
  /** Only this process; defaults to the script's target. */
  pid?: number;
  /** How many integer arguments to capture, 0-6 (default 0). */
  args?: number;
  /** Entry only: no duration and no return value, at a lower cost. */
  noReturn?: boolean;
  /** Drop calls shorter than this, in the kernel. */
  minDurationNs?: number;
  /** Keep 1 call in N, in the kernel (0 and 1: all). */
  sampleRate?: number;
}

/**
 * What the agent attached, from {@linkcode ProbeStream.ready}. Plain data:
 * `JSON.stringify` takes it as is.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const { functionNames } = await coral.trace.uprobe("http_*").ready();
 * ```
 */
export interface Subscription {
  /**
   * The agent's id of this subscription, also in each EventBatch. Agents
   * count them up from 1, so a number holds it exactly.
   */
  subscriptionId: number;
  /** Every function the name (or wildcard) matched. */
  functionNames: string[];
  /** Arguments captured per event. */
  nargs: number;
  /** Whether events carry a duration and return value. */
  hasReturn: boolean;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({
  done: true,
  value: undefined,
});

/**
 * The events of one probe, as an async iterable. The probe is attached on
 * the first `next()` (or `ready()`) and detached by `close()`, which leaving
 * a `for await` loop calls (break, return or an exception). Iterate it once.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const calls = coral.trace.uprobe("coral_work", { args: 1 });
 * let n = 0;
 * for await (const event of calls) {
 *   if (++n === 100) break; // detaches the probe
 * }
 * console.log(`dropped: ${calls.lost}`);
 * ```
 */
export class ProbeStream implements AsyncIterableIterator<ProbeEvent> {
  /**
   * Events the agent dropped for this stream so far because the script did
   * not keep up; each increase is also reported on stderr.
   */
  lost = 0;

  #label: string;
  #subscribe: Subscribe;
  #opening: Promise<Session> | undefined;
  #session: Session | undefined;
  #info: Subscription | undefined;
  #batch: EventColumns | undefined;
  #index = 0;
  #count = 0;
  #filling: Promise<IteratorResult<ProbeEvent>> | undefined;
  #closed = false;

  /** @internal Use `trace.uprobe` and friends. */
  constructor(label: string, subscribe: Subscribe) {
    this.#label = label;
    this.#subscribe = subscribe;
  }

  /** The stream is its own iterator: iterate it once. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * Attaches the probe if that has not happened yet and resolves to what
   * was attached; rejects with the agent's error (e.g. NOT_FOUND).
   */
  async ready(): Promise<Subscription> {
    await this.#open();
    return this.#info!;
  }

  /** The next event; `done` once the stream ended or was closed. */
  next(): Promise<IteratorResult<ProbeEvent>> {
    // The hot path: no async function, no await, one object per event.
    const i = this.#index;
    if (i < this.#count) {
      this.#index = i + 1;
      return Promise.resolve({
        done: false,
        value: new ProbeEvent(this.#batch!, i),
      });
    }
    if (this.#filling !== undefined) {
      return this.#filling.then(() => this.next());
    }
    const filling = this.#fill();
    this.#filling = filling;
    filling.then(
      () => this.#filling = undefined,
      () => this.#filling = undefined,
    );
    return filling;
  }

  /** Detaches the probe; `for await` calls this when the loop is left early. */
  return(): Promise<IteratorResult<ProbeEvent>> {
    this.close();
    return Promise.resolve(DONE);
  }

  /**
   * Closes the connection, which detaches the probe. Buffered events are
   * discarded and iteration ends.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#batch = undefined;
    this.#index = this.#count = 0;
    const session = this.#session;
    this.#session = undefined;
    if (session !== undefined) safeClose(session.transport);
    // Still connecting: #open sees #closed and closes the connection itself.
  }

  #open(): Promise<Session> {
    if (this.#closed) return Promise.reject(closedError());
    this.#opening ??= (async () => {
      const session = await openSession();
      try {
        await writeAll(
          session.transport,
          encodeRequest(2n, { $case: "subscribe", value: this.#subscribe }),
        );
        const frame = await session.frames.next();
        if (frame === null) throw closedError();
        const reply = unwrap(Response.decode(frame), "subscribe");
        // A number, not a bigint: JSON.stringify throws on a bigint, and
        // an id is compared and logged, never computed with. One past 2^53
        // would be rounded into another id: refused instead.
        if (reply.subscriptionId > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new CoralError(
            "INTERNAL",
            `the agent's subscription id ${reply.subscriptionId} is past 2^53`,
          );
        }
        this.#info = {
          subscriptionId: Number(reply.subscriptionId),
          functionNames: reply.functionNames,
          nargs: reply.nargs,
          hasReturn: reply.hasReturn,
        };
      } catch (e) {
        safeClose(session.transport);
        throw e instanceof CoralError ? e : closedError(e);
      }
      if (this.#closed) {
        safeClose(session.transport);
        throw closedError();
      }
      this.#session = session;
      return session;
    })();
    return this.#opening;
  }

  // Reads frames until one has events or ends the stream.
  async #fill(): Promise<IteratorResult<ProbeEvent>> {
    if (this.#closed) return DONE;
    try {
      const session = this.#session ?? await this.#open();
      for (;;) {
        const frame = await session.frames.next();
        if (this.#closed) return DONE;
        if (frame === null) {
          throw new CoralError(
            "UNAVAILABLE",
            `the agent closed the event stream of ${this.#label} without ending it`,
          );
        }
        const batch = decodeEventBatch(frame);
        batch.functionNames = this.#info!.functionNames;
        this.#noteLost(batch.lost);
        if (batch.count > 0) {
          this.#batch = batch;
          this.#count = batch.count;
          this.#index = 1;
          // An end flag on a batch with events ends the stream once they
          // are consumed: closing now only drops the connection.
          if (batch.end) this.#finish();
          return { done: false, value: new ProbeEvent(batch, 0) };
        }
        if (batch.end) {
          this.#finish();
          return DONE;
        }
      }
    } catch (e) {
      if (this.#closed) return DONE;
      this.close();
      throw e;
    }
  }

  // The stream ended normally: release the connection but let buffered
  // events drain.
  #finish(): void {
    const session = this.#session;
    this.#session = undefined;
    this.#closed = true;
    if (session !== undefined) safeClose(session.transport);
  }

  #noteLost(lost: bigint): void {
    const n = Number(lost);
    if (n > this.lost) {
      this.lost = n;
      console.error(
        `coral: ${n} events dropped for ${this.#label}: the script is slower than its probe`,
      );
    }
  }
}

function checkOptions(label: string, opts: TraceOptions): void {
  const bad = (what: string) => {
    throw new CoralError("INVALID_ARGUMENT", `${label}: ${what}`);
  };
  if (
    opts.args !== undefined &&
    !(Number.isInteger(opts.args) && opts.args >= 0 && opts.args <= 6)
  ) {
    bad(`args must be an integer from 0 to 6, not ${opts.args}`);
  }
  for (const key of ["pid", "sampleRate", "minDurationNs"] as const) {
    const v = opts[key];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) {
      bad(`${key} must be a non-negative integer, not ${v}`);
    }
  }
}

function stream(
  kind: ProbeKind,
  method: string,
  name: string,
  opts: TraceOptions,
): ProbeStream {
  const label = `trace.${method}(${JSON.stringify(name)})`;
  if (typeof name !== "string" || name === "") {
    throw new CoralError("INVALID_ARGUMENT", `${label}: a name is required`);
  }
  checkOptions(label, opts);
  return new ProbeStream(label, {
    kind,
    name,
    binary: opts.binary ?? "",
    pid: opts.pid ?? 0,
    config: {
      args: opts.args ?? 0,
      noReturn: opts.noReturn ?? false,
      minDurationNs: BigInt(opts.minDurationNs ?? 0),
      sampleRate: opts.sampleRate ?? 0,
    },
  });
}

/**
 * Probes a user-space function (a name or a wildcard such as `"http_*"`):
 * an event per call with its duration and return value, unless `noReturn`.
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
 */
export function uprobe(fn: string, opts: TraceOptions = {}): ProbeStream {
  return stream(ProbeKind.PROBE_KIND_UPROBE, "uprobe", fn, opts);
}

/**
 * Like {@linkcode uprobe}, for code that wants the return: the return
 * probe is required, so `noReturn` is not allowed.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * for await (const event of coral.trace.uretprobe("parse_config")) {
 *   if (event.returnValue !== 0) console.log("failed:", event.returnValue);
 * }
 * ```
 */
export function uretprobe(fn: string, opts: TraceOptions = {}): ProbeStream {
  if (opts.noReturn) {
    throw new CoralError(
      "INVALID_ARGUMENT",
      `trace.uretprobe(${
        JSON.stringify(fn)
      }): noReturn contradicts a return probe`,
    );
  }
  return stream(ProbeKind.PROBE_KIND_URETPROBE, "uretprobe", fn, opts);
}

/**
 * Probes a kernel function.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * for await (const event of coral.trace.kprobe("do_sys_openat2", { noReturn: true })) {
 *   console.log(event.comm, event.pid);
 * }
 * ```
 */
export function kprobe(fn: string, opts: TraceOptions = {}): ProbeStream {
  return stream(ProbeKind.PROBE_KIND_KPROBE, "kprobe", fn, opts);
}

/**
 * Attaches to a kernel tracepoint, named `"category:name"`.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * for await (const event of coral.trace.tracepoint("sched:sched_process_exec")) {
 *   console.log(event.comm, event.pid);
 * }
 * ```
 */
export function tracepoint(name: string, opts: TraceOptions = {}): ProbeStream {
  if (!/^[^:]+:[^:]+$/.test(name)) {
    throw new CoralError(
      "INVALID_ARGUMENT",
      `trace.tracepoint(${JSON.stringify(name)}): expected "category:name"`,
    );
  }
  return stream(ProbeKind.PROBE_KIND_TRACEPOINT, "tracepoint", name, opts);
}

/**
 * Where a {@linkcode usdt} marker is looked for: by default every file of
 * the script's target (its program and libraries, or the files its process
 * maps). A marker sends every hit with all its arguments, so the function
 * options (`args`, `noReturn`, `minDurationNs`, `sampleRate`) do not apply.
 */
export type UsdtOptions = Pick<TraceOptions, "binary" | "pid">;

const USDT_NAME = /^[A-Za-z0-9_*?]+:[A-Za-z0-9_*?]+$/;

/**
 * Probes a USDT marker, the static probes programs build in with
 * `<sys/sdt.h>` (Postgres, Python, Node, the JVM, libstdc++), named
 * `"provider:name"`; a `*` in the name matches several. An event per hit,
 * with no duration or return value: `args` holds the marker's arguments as
 * integers (the first six), and `functionName` says which marker fired.
 * An is-enabled marker (guarded by a semaphore) needs a running process:
 * start the script with `--pid`.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * for await (const event of coral.trace.usdt("python:gc__start", { pid: 4242 })) {
 *   console.log("collecting generation", event.args[0]);
 * }
 * ```
 */
export function usdt(marker: string, opts: UsdtOptions = {}): ProbeStream {
  const label = `trace.usdt(${JSON.stringify(marker)})`;
  if (typeof marker !== "string" || !USDT_NAME.test(marker)) {
    throw new CoralError(
      "INVALID_ARGUMENT",
      `${label}: expected "provider:name" (a * in name matches several)`,
    );
  }
  const extra = Object.keys(opts ?? {}).filter((k) =>
    k !== "binary" && k !== "pid"
  );
  if (extra.length > 0) {
    throw new CoralError(
      "INVALID_ARGUMENT",
      `${label}: ${
        extra.join(", ")
      } do not apply: a marker sends every hit with its arguments`,
    );
  }
  return stream(ProbeKind.PROBE_KIND_USDT, "usdt", marker, opts);
}
