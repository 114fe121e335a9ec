import { type EventColumns, int64At, uint64At } from "./_event_batch.ts";

/**
 * One probe hit: a function call (entry, and its return unless the probe was
 * entry-only) or a tracepoint. Events are views on the batch they arrived
 * in, so creating one costs an object; the timestamp, the bigint timestamp
 * and the argument array are computed on first access.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * for await (const event of coral.trace.uprobe("coral_work", { args: 2 })) {
 *   console.log(event.functionName, event.pid, event.args, event.durationNs);
 *   break;
 * }
 * ```
 */
export class ProbeEvent {
  #batch: EventColumns;
  #i: number;
  #args: number[] | undefined = undefined;

  /** @internal Events come from `trace.*` streams. */
  constructor(batch: EventColumns, index: number) {
    this.#batch = batch;
    this.#i = index;
  }

  /** When the function was entered (or the tracepoint hit), wall clock. */
  get timestamp(): Date {
    return new Date(uint64At(this.#batch.timestampWords, this.#i) / 1e6);
  }

  /** `timestamp` in epoch nanoseconds, exactly. */
  get timestampNs(): bigint {
    return this.#batch.timestampNs[this.#i];
  }

  /** Process id (the thread group id). */
  get pid(): number {
    return this.#batch.pid[this.#i];
  }

  /** Thread id. */
  get tid(): number {
    return this.#batch.tid[this.#i];
  }

  /** The thread's command name, as the kernel reports it (at most 15 bytes). */
  get comm(): string {
    const b = this.#batch;
    return b.commNames[b.commIndex[this.#i]] ?? "";
  }

  /** The probed function (one of a wildcard's matches) or tracepoint. */
  get functionName(): string {
    const b = this.#batch;
    return b.functionNames[b.probeIndex[this.#i]] ?? "";
  }

  /** Time from entry to return, or `null` for entry-only events. */
  get durationNs(): number | null {
    const b = this.#batch;
    return b.hasReturn[this.#i] === 0
      ? null
      : uint64At(b.durationWords, this.#i);
  }

  /**
   * The integer arguments asked for with the `args` option (a USDT
   * marker's: its own, up to six), as signed 64-bit values (exact up to
   * 2^53); pointers show up as addresses.
   */
  get args(): number[] {
    if (this.#args === undefined) {
      const b = this.#batch;
      const n = b.nargs;
      const out = new Array<number>(n);
      for (let j = 0, k = this.#i * n; j < n; j++, k++) {
        out[j] = int64At(b.argsWords, k);
      }
      this.#args = out;
    }
    return this.#args;
  }

  /**
   * The return value as a signed 64-bit integer; `null` for entry-only
   * events and for a function that returns nothing (by its debug info,
   * DWARF). Without debug info such a function's value is whatever the
   * return register held.
   */
  get returnValue(): number | null {
    const b = this.#batch;
    return b.hasReturn[this.#i] === 0 || b.noReturnValue[this.#i] !== 0
      ? null
      : int64At(b.returnWords, this.#i);
  }

  /**
   * A plain object with every field, for `JSON.stringify`; `timestampNs`
   * becomes a decimal string since JSON has no 64-bit integers.
   */
  toJSON(): ProbeEventFields<string> {
    return { ...this.#fields(), timestampNs: this.timestampNs.toString() };
  }

  #fields(): ProbeEventFields<bigint> {
    return {
      timestamp: this.timestamp,
      timestampNs: this.timestampNs,
      pid: this.pid,
      tid: this.tid,
      comm: this.comm,
      functionName: this.functionName,
      durationNs: this.durationNs,
      args: this.args,
      returnValue: this.returnValue,
    };
  }

  /**
   * How `console.log` shows an event: getters live on the prototype, so it
   * would otherwise show an empty object.
   */
  [Symbol.for("Deno.customInspect")](
    inspect: (value: unknown, options?: unknown) => string,
    options: unknown,
  ): string {
    return `ProbeEvent ${inspect(this.#fields(), options)}`;
  }
}

/** The fields of a {@linkcode ProbeEvent} as a plain object. */
export interface ProbeEventFields<Ns extends bigint | string> {
  /** {@linkcode ProbeEvent.timestamp} */
  timestamp: Date;
  /** {@linkcode ProbeEvent.timestampNs}, a string in JSON. */
  timestampNs: Ns;
  /** {@linkcode ProbeEvent.pid} */
  pid: number;
  /** {@linkcode ProbeEvent.tid} */
  tid: number;
  /** {@linkcode ProbeEvent.comm} */
  comm: string;
  /** {@linkcode ProbeEvent.functionName} */
  functionName: string;
  /** {@linkcode ProbeEvent.durationNs} */
  durationNs: number | null;
  /** {@linkcode ProbeEvent.args} */
  args: number[];
  /** {@linkcode ProbeEvent.returnValue} */
  returnValue: number | null;
}
