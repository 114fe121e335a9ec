// Length-delimited framing: every message on a coral socket is preceded by
// its byte length as a protobuf varint.

/** The byte-stream side of a connection: what `Deno.Conn` provides. */
export interface Transport {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/**
 * A frame larger than this is a corrupt stream rather than a real message:
 * stopping here keeps a desynchronised reader from allocating gigabytes.
 */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

// Reads smaller than this cost a syscall per few events at high rates.
const MIN_READ_BYTES = 64 * 1024;

/**
 * Prefixes `message` with its length as a varint.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./_framing.ts";
 * encodeFrame(new Uint8Array([7, 8])); // Uint8Array [2, 7, 8]
 * ```
 */
export function encodeFrame(message: Uint8Array): Uint8Array {
  let n = message.length;
  let header = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 128)) header++;
  const out = new Uint8Array(header + message.length);
  let pos = 0;
  while (n >= 0x80) {
    out[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  out.set(message, pos);
  return out;
}

/**
 * Writes all of `bytes`: `Deno.Conn.write` may write only part of a buffer.
 *
 * @example
 * ```ts ignore
 * import { writeAll } from "./_framing.ts";
 * await writeAll(conn, new Uint8Array([1, 2, 3]));
 * ```
 */
export async function writeAll(w: Transport, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    off += await w.write(off === 0 ? bytes : bytes.subarray(off));
  }
}

/**
 * Splits a byte stream into frames, whatever the reads look like: a frame
 * split across reads, or many frames in one read.
 *
 * @example
 * ```ts ignore
 * import { FrameReader } from "./_framing.ts";
 * const frames = new FrameReader(conn);
 * for (let f = await frames.next(); f !== null; f = await frames.next()) {
 *   console.log(f.length);
 * }
 * ```
 */
export class FrameReader {
  #source: Transport;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #maxFrameBytes: number;

  constructor(
    source: Transport,
    options: { initialBytes?: number; maxFrameBytes?: number } = {},
  ) {
    this.#source = source;
    this.#buf = new Uint8Array(options.initialBytes ?? 2 * MIN_READ_BYTES);
    this.#maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * The next frame already in the buffer, or `undefined` if it needs more
   * bytes. The result is a view into the buffer, valid until the next call
   * to `tryNext` or `next`: copy what must outlive it.
   */
  tryNext(): Uint8Array | undefined {
    const buf = this.#buf;
    const end = this.#end;
    let pos = this.#start;
    let len = 0;
    let scale = 1;
    for (;;) {
      if (pos >= end) return undefined;
      const b = buf[pos++];
      len += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 128;
      if (scale > 2 ** 35) throw new Error("coral: corrupt frame length");
    }
    if (len > this.#maxFrameBytes) {
      throw new Error(`coral: frame of ${len} bytes exceeds the limit`);
    }
    if (end - pos < len) return undefined;
    this.#start = pos + len;
    return buf.subarray(pos, pos + len);
  }

  /**
   * Resolves to the next frame (a view valid until the next call), or `null`
   * when the stream ends cleanly between frames. A stream that ends inside a
   * frame rejects.
   */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      const frame = this.tryNext();
      if (frame !== undefined) return frame;
      this.#makeRoom();
      const n = await this.#source.read(this.#buf.subarray(this.#end));
      if (n === null) {
        if (this.#end === this.#start) return null;
        throw new Error("coral: connection closed in the middle of a frame");
      }
      this.#end += n;
    }
  }

  // Called only when the buffered bytes are not a whole frame, so moving
  // them invalidates no view handed out.
  #makeRoom(): void {
    const pending = this.#end - this.#start;
    const need = Math.max(this.#pendingFrameBytes(), pending + MIN_READ_BYTES);
    if (need > this.#buf.length) {
      let size = this.#buf.length * 2;
      while (size < need) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = bigger;
    } else if (this.#buf.length - this.#end < MIN_READ_BYTES || pending === 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      return;
    }
    this.#start = 0;
    this.#end = pending;
  }

  // Header plus body of the partially received frame, so one allocation
  // fits it; 0 while the header itself is incomplete.
  #pendingFrameBytes(): number {
    let pos = this.#start;
    let len = 0;
    let scale = 1;
    while (pos < this.#end) {
      const b = this.#buf[pos++];
      len += (b & 0x7f) * scale;
      if (b < 0x80) return pos - this.#start + len;
      scale *= 128;
    }
    return 0;
  }
}
