// Test helper for the client's parsing: an in-memory connection, and a
// scripted byte peer on its other end that writes the literal frames a test
// gives it and records the frames the client wrote. It emulates nothing of
// the agent: it does not look at what the client asks, keeps no state and
// answers nothing on its own. Tests of what the SDK's calls do run against a
// real agent (see `_real_agent.ts`); this peer is only for bytes a real agent
// never writes on purpose (a frame split at every byte, an `end` batch that
// still carries events, a stream cut without its end batch, a corrupt batch,
// an error of id 0, replies in an order the test chooses).

import {
  EventBatch,
  Response,
  type SubscribeReply,
} from "./gen/coral/sdk/v1/sdk.ts";
import { _setConnector, safeClose, socketConnector } from "./_client.ts";
import {
  encodeFrame,
  FrameReader,
  type Transport,
  writeAll,
} from "./_framing.ts";

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
  /** Reads return at most this many bytes (random 1..n; 1: every byte alone). */
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

/** One step of a script: wait for the client, then write bytes. */
export interface Step {
  /** Wait until the client has written this many frames on the connection. */
  afterFrames: number;
  /** Then write these bytes, in order (usually frames from the helpers below). */
  write: Uint8Array[];
}

/** What the peer does on one connection. */
export interface Script {
  steps: Step[];
  /**
   * After the last step, hang up (true) or wait until the client closes
   * (false, the default).
   */
  hangUp?: boolean;
  /** How the in-memory connection splits reads and writes. */
  pipe?: PipeOptions;
}

/** What happened on one connection. */
export interface Recorded {
  /** The frames the client wrote, without their length prefix. */
  frames: Uint8Array[];
  /** Whether the client closed the connection (rather than the peer). */
  closedByClient: boolean;
}

/**
 * Plays one {@linkcode Script} per connection the client opens, in order;
 * a connection past the last script is refused.
 */
export class ScriptedPeer {
  #scripts: Script[];
  /** One entry per connection opened, in order. */
  readonly connections: Recorded[] = [];
  #done: Promise<void>[] = [];

  constructor(scripts: Script[]) {
    this.#scripts = scripts;
  }

  connector = (): Promise<Transport> => {
    const script = this.#scripts[this.connections.length];
    if (script === undefined) {
      return Promise.reject(
        new Deno.errors.ConnectionRefused("no script for this connection"),
      );
    }
    const [client, peer] = memoryPipe(script.pipe);
    const recorded: Recorded = { frames: [], closedByClient: false };
    this.connections.push(recorded);
    this.#done.push(play(peer, script, recorded));
    return Promise.resolve(client);
  };

  /** Resolves once every connection is over (client or peer hung up). */
  async settled(): Promise<void> {
    await Promise.all(this.#done);
  }
}

async function play(
  peer: MemoryEnd,
  script: Script,
  recorded: Recorded,
): Promise<void> {
  const frames = new FrameReader(peer);
  let clientEof = false;
  let wake: () => void = () => {};
  // Records everything the client writes until it closes.
  const reading = (async () => {
    try {
      for (let f = await frames.next(); f !== null; f = await frames.next()) {
        recorded.frames.push(f.slice());
        wake();
      }
      clientEof = true;
    } catch {
      // The peer hung up itself.
    }
    wake();
  })();
  const clientWrote = async (n: number) => {
    while (recorded.frames.length < n && !clientEof && !peer.closed) {
      await new Promise<void>((r) => wake = r);
    }
    return recorded.frames.length >= n;
  };
  try {
    for (const step of script.steps) {
      if (!await clientWrote(step.afterFrames)) break;
      for (const bytes of step.write) await writeAll(peer, bytes);
    }
  } catch {
    // The client closed while the peer wrote.
  }
  if (script.hangUp) safeClose(peer);
  await reading;
  recorded.closedByClient = clientEof;
  safeClose(peer);
}

/**
 * Runs `fn` with the SDK's connections going to a scripted peer, then
 * restores the socket connector.
 */
export async function withScriptedPeer(
  scripts: Script[],
  fn: (peer: ScriptedPeer) => Promise<void>,
): Promise<void> {
  const peer = new ScriptedPeer(scripts);
  await _setConnector(peer.connector);
  try {
    await fn(peer);
  } finally {
    await _setConnector(socketConnector);
    await peer.settled();
  }
}

// Literal frames for scripts.

/** A Response, length-prefixed. */
export function responseFrame(response: Response): Uint8Array {
  return encodeFrame(Response.encode(response).finish());
}

/** An EventBatch, length-prefixed. */
export function batchFrame(batch: Partial<EventBatch>): Uint8Array {
  return encodeFrame(EventBatch.encode(EventBatch.fromPartial(batch)).finish());
}

/** An error Response with this id. */
export function errorFrame(
  id: bigint,
  code: string,
  message: string,
): Uint8Array {
  return responseFrame({
    id,
    result: { $case: "error", value: { code, message } },
  });
}

/** The reply to Hello (always id 1). */
export const HELLO_REPLY: Uint8Array = responseFrame({
  id: 1n,
  result: {
    $case: "hello",
    value: {
      executionId: "exec-1",
      scriptId: "script-1",
      agentVersion: "scripted",
      params: {},
      target: { binary: "/bin/scripted", pid: 4242 },
    },
  },
});

/** A SubscribeReply for a stream (always id 2, the stream's first request after Hello). */
export function subscribeReplyFrame(
  reply: Partial<SubscribeReply> = {},
): Uint8Array {
  return responseFrame({
    id: 2n,
    result: {
      $case: "subscribe",
      value: {
        subscriptionId: 1n,
        functionNames: ["coral_work"],
        nargs: 2,
        hasReturn: true,
        ...reply,
      },
    },
  });
}

/**
 * A stream: Hello and Subscribe answered, then `frames` written; with
 * `hangUp`, the peer closes after them.
 */
export function streamScript(
  frames: Uint8Array[],
  opts: { hangUp?: boolean; pipe?: PipeOptions } = {},
): Script {
  return {
    steps: [
      { afterFrames: 1, write: [HELLO_REPLY] },
      { afterFrames: 2, write: [subscribeReplyFrame(), ...frames] },
    ],
    ...opts,
  };
}

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
    noReturnValue: [],
    ...extra,
  };
}
