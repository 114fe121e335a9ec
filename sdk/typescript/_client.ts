// Connections to the agent: the shared control connection, and the Hello
// handshake that every connection (event streams too) starts with.

import { type HelloReply, Request, Response } from "./gen/coral/sdk/v1/sdk.ts";
import {
  encodeFrame,
  FrameReader,
  type Transport,
  writeAll,
} from "./_framing.ts";
import { CoralError } from "./types.ts";

/** Sent in Hello so the agent can refuse an SDK it does not speak. */
export const SDK_VERSION = "0.1.0";

/** Opens a byte stream to the agent. Tests swap in an in-memory one. */
export type Connector = () => Promise<Transport>;

export type Call = NonNullable<Request["call"]>;
export type Result = NonNullable<Response["result"]>;
export type ResultCase = Exclude<Result["$case"], "error">;
export type ResultOf<C extends ResultCase> = Extract<
  Result,
  { $case: C }
>["value"];

// Reading an env var without permission would prompt on a terminal; a
// script started by coral always has these two granted.
function readEnv(name: string): string | undefined {
  const state =
    Deno.permissions.querySync({ name: "env", variable: name }).state;
  if (state !== "granted") return undefined;
  return Deno.env.get(name);
}

function token(): string {
  return readEnv("CORAL_TOKEN") ?? "";
}

/** Connects to the Unix socket named by `CORAL_SOCKET`. */
export const socketConnector: Connector = async () => {
  const path = readEnv("CORAL_SOCKET");
  if (!path) {
    throw new CoralError(
      "UNAVAILABLE",
      "CORAL_SOCKET is not set (or not readable): run the script with `coral run`",
    );
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    return conn;
  } catch (e) {
    throw new CoralError(
      "UNAVAILABLE",
      `cannot connect to the coral agent at ${path}: ${(e as Error).message}`,
      { cause: e },
    );
  }
};

let connector: Connector = socketConnector;

/** Replaces how connections are opened, closing the current control connection. */
export function _setConnector(next: Connector): Promise<void> {
  connector = next;
  return closeClient();
}

/** Opens a new connection with the current connector (event streams use this). */
export function connect(): Promise<Transport> {
  return connector();
}

export function encodeRequest(id: bigint, call: Call): Uint8Array {
  return encodeFrame(Request.encode({ id, call }).finish());
}

/** Throws the agent's error, or checks that the reply is the expected kind. */
export function unwrap<C extends ResultCase>(
  response: Response,
  expect: C,
): ResultOf<C> {
  const result = response.result;
  if (result?.$case === "error") {
    throw new CoralError(result.value.code || "INTERNAL", result.value.message);
  }
  if (result?.$case !== expect) {
    throw new CoralError(
      "INTERNAL",
      `coral: the agent answered ${
        result?.$case ?? "nothing"
      } where ${expect} was expected`,
    );
  }
  return result.value as ResultOf<C>;
}

export function closedError(cause?: unknown): CoralError {
  return new CoralError(
    "UNAVAILABLE",
    "the connection to the coral agent was closed",
    { cause },
  );
}

/** Closes `t`, ignoring that it may already be closed. */
export function safeClose(t: Transport): void {
  try {
    t.close();
  } catch {
    // Already closed: nothing left to release.
  }
}

/** A connection past its Hello. */
export interface Session {
  transport: Transport;
  frames: FrameReader;
  hello: HelloReply;
}

/**
 * Connects and says Hello; the first request on every connection must be
 * Hello, and the agent answers it before anything else.
 */
export async function openSession(): Promise<Session> {
  const transport = await connect();
  try {
    const frames = new FrameReader(transport);
    await writeAll(
      transport,
      encodeRequest(1n, {
        $case: "hello",
        value: { token: token(), sdkVersion: SDK_VERSION },
      }),
    );
    const frame = await frames.next();
    if (frame === null) throw closedError();
    const response = Response.decode(frame);
    // The agent answers a frame it cannot parse with an error of id 0.
    if (response.id !== 1n && response.result?.$case !== "error") {
      throw new CoralError(
        "INTERNAL",
        `coral: Hello answered with id ${response.id}`,
      );
    }
    return { transport, frames, hello: unwrap(response, "hello") };
  } catch (e) {
    safeClose(transport);
    throw e instanceof CoralError ? e : closedError(e);
  }
}

interface Pending {
  resolve(response: Response): void;
  reject(error: unknown): void;
}

// The control connection. Replies are read only while a request is waiting,
// so an idle connection has no read in flight and does not keep the process
// alive: a script exits once its own work is done.
class ControlSession {
  readonly session: Session;
  #pending = new Map<bigint, Pending>();
  #nextId = 2n;
  #reading = false;
  #writes: Promise<void> = Promise.resolve();
  #queued: Uint8Array[] = [];
  #closed = false;
  #onClose: () => void;

  constructor(session: Session, onClose: () => void) {
    this.session = session;
    this.#onClose = onClose;
  }

  call(call: Call): Promise<Response> {
    if (this.#closed) return Promise.reject(closedError());
    const id = this.#nextId++;
    const reply = new Promise<Response>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    // Writes are chained so that two requests never interleave their bytes;
    // requests made while a write is in flight go together in the next one
    // (a script's emits without awaiting each: one write for many).
    this.#queued.push(encodeRequest(id, call));
    if (this.#queued.length === 1) {
      const write = this.#writes.then(() => {
        const frames = this.#queued;
        this.#queued = [];
        return writeAll(this.session.transport, concat(frames));
      });
      this.#writes = write.catch((e) => this.close(closedError(e)));
    }
    if (!this.#reading) this.#readReplies();
    return reply;
  }

  async #readReplies(): Promise<void> {
    this.#reading = true;
    try {
      while (this.#pending.size > 0) {
        const frame = await this.session.frames.next();
        if (frame === null) throw closedError();
        const response = Response.decode(frame);
        const pending = this.#pending.get(response.id);
        if (pending === undefined) {
          // Id 0: the agent could not parse a request and hangs up; its
          // reason is the best error for everything still waiting.
          if (response.id === 0n && response.result?.$case === "error") {
            const { code, message } = response.result.value;
            throw new CoralError(code || "INTERNAL", message);
          }
          // Any other unknown id (a reply racing close()) is dropped.
          continue;
        }
        this.#pending.delete(response.id);
        pending.resolve(response);
      }
    } catch (e) {
      this.close(e instanceof CoralError ? e : closedError(e));
    } finally {
      this.#reading = false;
    }
  }

  close(error: CoralError = closedError()): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    safeClose(this.session.transport);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(error);
  }
}

function concat(frames: Uint8Array[]): Uint8Array {
  if (frames.length === 1) return frames[0];
  let size = 0;
  for (const f of frames) size += f.length;
  const out = new Uint8Array(size);
  let pos = 0;
  for (const f of frames) {
    out.set(f, pos);
    pos += f.length;
  }
  return out;
}

let control: Promise<ControlSession> | undefined;

function controlSession(): Promise<ControlSession> {
  if (control === undefined) {
    const opening: Promise<ControlSession> = openSession().then(
      (s) =>
        new ControlSession(s, () => {
          if (control === opening) control = undefined;
        }),
    );
    control = opening;
    // A failed connect is not cached: the next call tries again.
    opening.catch(() => {
      if (control === opening) control = undefined;
    });
  }
  return control;
}

/**
 * Sends one request on the control connection and resolves to its reply's
 * value, or rejects with the agent's {@linkcode CoralError}.
 */
export async function request<C extends ResultCase>(
  call: Call,
  expect: C,
): Promise<ResultOf<C>> {
  const session = await controlSession();
  return unwrap(await session.call(call), expect);
}

/** The HelloReply of the control connection. */
export async function hello(): Promise<HelloReply> {
  return (await controlSession()).session.hello;
}

/** Closes the control connection; the next request opens a new one. */
export async function closeClient(): Promise<void> {
  const current = control;
  control = undefined;
  try {
    (await current)?.close();
  } catch {
    // It never opened: nothing to close.
  }
}
