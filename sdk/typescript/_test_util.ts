// Test helpers: an in-memory connection and a fake agent speaking the SDK
// protocol over it, so the client is tested without sockets or permissions;
// and the check for a real agent.

import {
  EventBatch,
  Request,
  Response,
  type Subscribe,
  type SubscribeReply,
} from "./gen/coral/sdk/v1/sdk.ts";
import {
  _setConnector,
  type Call,
  type Connector,
  type Result,
  safeClose,
  socketConnector,
} from "./_client.ts";
import {
  encodeFrame,
  FrameReader,
  type Transport,
  writeAll,
} from "./_framing.ts";

/**
 * The socket of a real agent to test against, if the tests were started by
 * the agent harness; without env permission there is none.
 */
export function agentSocket(): string | undefined {
  const state =
    Deno.permissions.querySync({ name: "env", variable: "CORAL_SOCKET" }).state;
  return state === "granted"
    ? Deno.env.get("CORAL_SOCKET") || undefined
    : undefined;
}

/** Where a test needs a real agent: skipped (ignored) without one. */
export const noAgent = agentSocket() === undefined;

// One direction of a connection.
class Pipe {
  chunks: Uint8Array[] = [];
  queued = 0;
  closed = false;
  #wake: (() => void)[] = [];
  notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }
  wait(): Promise<void> {
    return new Promise((r) => this.#wake.push(r));
  }
}

export interface PipeOptions {
  /** Reads return at most this many bytes (random 1..n): frames arrive split. */
  maxRead?: number;
  /** Writes accept at most this many bytes (random 1..n): tests writeAll. */
  maxWrite?: number;
  /** A writer waits while this many bytes are unread: backpressure. */
  highWater?: number;
}

/** One end of an in-memory connection. */
export class MemoryEnd implements Transport {
  closed = false;
  #in: Pipe;
  #out: Pipe;
  #opts: PipeOptions;

  constructor(inbound: Pipe, outbound: Pipe, opts: PipeOptions) {
    this.#in = inbound;
    this.#out = outbound;
    this.#opts = opts;
  }

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.closed) throw new Deno.errors.BadResource("closed");
      if (this.#in.chunks.length > 0) break;
      if (this.#in.closed) return null;
      await this.#in.wait();
    }
    const chunk = this.#in.chunks[0];
    let n = Math.min(p.length, chunk.length);
    if (this.#opts.maxRead) {
      n = Math.min(n, 1 + Math.floor(Math.random() * this.#opts.maxRead));
    }
    p.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#in.chunks.shift();
    else this.#in.chunks[0] = chunk.subarray(n);
    this.#in.queued -= n;
    this.#in.notify();
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    const high = this.#opts.highWater ?? Infinity;
    while (!this.closed && !this.#out.closed && this.#out.queued > high) {
      await this.#out.wait();
    }
    if (this.closed) throw new Deno.errors.BadResource("closed");
    if (this.#out.closed) throw new Deno.errors.BrokenPipe("peer closed");
    let n = p.length;
    if (this.#opts.maxWrite) {
      n = Math.min(n, 1 + Math.floor(Math.random() * this.#opts.maxWrite));
    }
    this.#out.chunks.push(p.slice(0, n));
    this.#out.queued += n;
    this.#out.notify();
    return n;
  }

  close(): void {
    if (this.closed) throw new Deno.errors.BadResource("already closed");
    this.closed = true;
    this.#in.closed = true;
    this.#out.closed = true;
    this.#in.notify();
    this.#out.notify();
  }
}

/** Two connected in-memory ends. */
export function memoryPipe(opts: PipeOptions = {}): [MemoryEnd, MemoryEnd] {
  const a = new Pipe();
  const b = new Pipe();
  return [new MemoryEnd(a, b, opts), new MemoryEnd(b, a, opts)];
}

/** What a fake subscription does: its reply, then the batches it writes. */
export interface FakeStream {
  reply: SubscribeReply | { error: { code: string; message: string } };
  batches?:
    | AsyncIterable<EventBatch | Uint8Array>
    | Iterable<EventBatch | Uint8Array>;
}

export interface FakeAgentOptions {
  params?: Record<string, string>;
  target?: { binary: string; pid: number };
  /** Answers control requests; the default answers INTERNAL. */
  handle?(call: Call): Result | Promise<Result>;
  subscribe?(sub: Subscribe): FakeStream;
  /** Only this token is accepted (default: any). */
  token?: string;
  pipe?: PipeOptions;
}

/**
 * An agent in memory. `connector` plugs it into the client
 * (`_setConnector(agent.connector)`).
 */
export class FakeAgent {
  opts: FakeAgentOptions;
  /** Every request received, on every connection. */
  requests: Request[] = [];
  connections = 0;
  /** Subscription connections the client closed. */
  detached = 0;
  /** Server ends, to check what is still open. */
  ends: MemoryEnd[] = [];

  constructor(opts: FakeAgentOptions = {}) {
    this.opts = opts;
  }

  /** Connections still open on the client side. */
  get open(): number {
    return this.ends.filter((e) => !e.closed).length;
  }

  connector: Connector = () => {
    const [client, server] = memoryPipe(this.opts.pipe);
    this.connections++;
    this.ends.push(server);
    this.serve(server);
    return Promise.resolve(client);
  };

  /** Speaks the agent's side of the protocol on `t` until either side closes. */
  async serve(t: Transport): Promise<void> {
    try {
      await this.#converse(t);
    } catch {
      // The client went away mid-conversation.
    } finally {
      safeClose(t);
    }
  }

  async #converse(t: Transport): Promise<void> {
    const frames = new FrameReader(t);
    let writes = Promise.resolve();
    const send = (r: Response) => {
      const bytes = encodeFrame(Response.encode(r).finish());
      writes = writes.then(() => writeAll(t, bytes));
      return writes;
    };
    let greeted = false;
    for (;;) {
      const frame = await frames.next();
      if (frame === null) return;
      const req = Request.decode(frame);
      this.requests.push(req);
      const call = req.call;
      if (!greeted) {
        if (call?.$case !== "hello") {
          await send({
            id: req.id,
            result: {
              $case: "error",
              value: { code: "INVALID_ARGUMENT", message: "Hello first" },
            },
          });
          return;
        }
        if (
          this.opts.token !== undefined && call.value.token !== this.opts.token
        ) {
          await send({
            id: req.id,
            result: {
              $case: "error",
              value: { code: "PERMISSION_DENIED", message: "bad token" },
            },
          });
          return;
        }
        greeted = true;
        await send({
          id: req.id,
          result: {
            $case: "hello",
            value: {
              executionId: "exec-1",
              scriptId: "script-1",
              agentVersion: "fake",
              params: this.opts.params ?? {},
              target: this.opts.target ?? { binary: "/bin/fake", pid: 4242 },
            },
          },
        });
        continue;
      }
      if (call?.$case === "subscribe") {
        await this.#stream(t, frames, req.id, call.value, send);
        return;
      }
      const handle = this.opts.handle;
      // Not awaited: replies may go out of order, as a real agent's may.
      Promise.resolve(
        handle ? handle(call!) : {
          $case: "error",
          value: { code: "INTERNAL", message: "no handler" },
        } as Result,
      ).then(
        (result) => send({ id: req.id, result }),
        (e) =>
          send({
            id: req.id,
            result: {
              $case: "error",
              value: { code: "INTERNAL", message: String(e) },
            },
          }),
      );
    }
  }

  async #stream(
    t: Transport,
    frames: FrameReader,
    id: bigint,
    sub: Subscribe,
    send: (r: Response) => Promise<void>,
  ): Promise<void> {
    const spec = this.opts.subscribe?.(sub) ??
      { reply: { error: { code: "NOT_FOUND", message: "no such function" } } };
    if ("error" in spec.reply) {
      await send({ id, result: { $case: "error", value: spec.reply.error } });
      return;
    }
    await send({ id, result: { $case: "subscribe", value: spec.reply } });
    // The client says nothing more on a stream: end of file means it closed
    // the connection, which detaches the probe.
    const closedByClient = frames.next().then((f) => f === null, () => false);
    const detached = closedByClient.then((byClient) => {
      if (byClient) this.detached++;
      return DETACHED;
    });
    const source = spec.batches ?? [];
    const it = Symbol.asyncIterator in source
      ? source[Symbol.asyncIterator]()
      : (source as Iterable<EventBatch | Uint8Array>)[Symbol.iterator]();
    try {
      for (;;) {
        const step = await Promise.race([it.next(), detached]);
        if (typeof step === "symbol" || step.done) break;
        const b = step.value;
        const write = writeAll(
          t,
          b instanceof Uint8Array
            ? b
            : encodeFrame(EventBatch.encode(b).finish()),
        );
        if (await Promise.race([write, detached]) === DETACHED) break;
      }
    } catch {
      // The client closed while we wrote.
    }
    // A generator blocked in its own await cannot be returned; leave it.
    void it.return?.();
    // Out of batches without an end: the agent hangs up, as a crashed one would.
    safeClose(t);
    await detached;
  }
}

const DETACHED: unique symbol = Symbol("detached");

/** An EventBatch of `n` events of `coral_work(i, 2i)` returning 3i, from `first`. */
export function workBatch(
  first: number,
  n: number,
  extra: Partial<EventBatch> = {},
): EventBatch {
  const ts: bigint[] = [];
  const args: bigint[] = [];
  const ret: bigint[] = [];
  for (let k = 0; k < n; k++) {
    const i = first + k;
    ts.push(1_700_000_000_000_000_000n + BigInt(i) * 1_000_000n);
    args.push(BigInt(i), BigInt(2 * i));
    ret.push(BigInt(3 * i));
  }
  return {
    subscriptionId: 1n,
    timestampNs: ts,
    pid: new Array(n).fill(4242),
    tid: new Array(n).fill(4243),
    probeIndex: new Array(n).fill(0),
    durationNs: new Array(n).fill(1500n),
    hasReturn: new Array(n).fill(true),
    nargs: 2,
    args,
    returnValue: ret,
    commIndex: new Array(n).fill(0),
    commNames: ["worker"],
    lost: 0n,
    end: false,
    ...extra,
  };
}

/**
 * Runs `fn` with the SDK connected to a fresh fake agent, then restores the
 * real connector.
 */
export async function withFakeAgent(
  opts: FakeAgentOptions,
  fn: (agent: FakeAgent) => Promise<void>,
): Promise<void> {
  const agent = new FakeAgent(opts);
  await _setConnector(agent.connector);
  try {
    await fn(agent);
  } finally {
    await _setConnector(socketConnector);
  }
}

/** Lets queued promise callbacks and timers run. */
export function tick(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
