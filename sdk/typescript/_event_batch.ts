// A hand-written decoder for coral.sdk.v1.EventBatch. The generated decoder
// turns every fixed64 into a bigint pushed onto an array, which caps a stream
// at a few hundred thousand events per second; here each packed column is
// copied once into an aligned buffer and read through typed-array views.

/** One decoded EventBatch, column by column. Entry i of each column is event i. */
export interface EventColumns {
  subscriptionId: bigint;
  /** Events in the batch. */
  count: number;
  /** Epoch nanoseconds. */
  timestampNs: BigUint64Array;
  /** `timestampNs` as (low, high) uint32 pairs, to get a number without a bigint. */
  timestampWords: Uint32Array;
  pid: Uint32Array;
  tid: Uint32Array;
  probeIndex: Uint32Array;
  durationNs: BigUint64Array;
  durationWords: Uint32Array;
  /** 0 or 1 per event. */
  hasReturn: Uint8Array;
  nargs: number;
  /** `nargs` values per event, event-major. */
  args: BigInt64Array;
  /** `args` as (low, high) pairs; the high word is signed once `| 0`. */
  argsWords: Uint32Array;
  returnValue: BigInt64Array;
  returnWords: Uint32Array;
  /** 0 or 1 per event: 1 where the function returns nothing, so `returnValue` is not a value. */
  noReturnValue: Uint8Array;
  commIndex: Uint32Array;
  commNames: string[];
  /** Events dropped for this subscription so far. */
  lost: bigint;
  /** No batch follows on this stream. */
  end: boolean;
  /** From the SubscribeReply, which `probeIndex` indexes; the stream fills it in. */
  functionNames: string[];
}

// Typed arrays use the platform's byte order and protobuf's fixed types are
// little-endian; every platform Deno ships for is little-endian.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const utf8 = new TextDecoder();

// Raw little-endian bytes of one column, possibly in several pieces: protobuf
// allows a packed field to be split, and unpacked elements are legal too.
class Column {
  pieces: Uint8Array[] = [];
  bytes = 0;
  add(piece: Uint8Array): void {
    this.pieces.push(piece);
    this.bytes += piece.length;
  }
  // Always copies: the input is a view into a reused read buffer, and a
  // fresh ArrayBuffer is aligned for 8-byte views.
  take(width: number): ArrayBuffer {
    if (this.bytes % width !== 0) {
      throw new Error(
        `coral: EventBatch column of ${this.bytes} bytes is not a multiple of ${width}`,
      );
    }
    if (this.pieces.length === 1) {
      const p = this.pieces[0];
      return p.buffer.slice(
        p.byteOffset,
        p.byteOffset + p.length,
      ) as ArrayBuffer;
    }
    const out = new Uint8Array(this.bytes);
    let off = 0;
    for (const p of this.pieces) {
      out.set(p, off);
      off += p.length;
    }
    return out.buffer;
  }
}

/**
 * Decodes the bytes of one EventBatch message (without its length prefix).
 * Columns that are absent while the batch has events read as zeros, so an
 * agent may leave out all-zero columns.
 *
 * @example
 * ```ts
 * import { decodeEventBatch } from "./_event_batch.ts";
 * const batch = decodeEventBatch(new Uint8Array([0x70, 1])); // end: true
 * console.log(batch.count, batch.end); // 0 true
 * ```
 */
export function decodeEventBatch(bytes: Uint8Array): EventColumns {
  if (!LITTLE_ENDIAN) {
    throw new Error("coral: big-endian platforms are not supported");
  }
  const cols = {
    ts: new Column(),
    pid: new Column(),
    tid: new Column(),
    probe: new Column(),
    dur: new Column(),
    args: new Column(),
    ret: new Column(),
    comm: new Column(),
  };
  const hasReturn: Uint8Array[] = [];
  const noReturnValue: Uint8Array[] = [];
  const commNames: string[] = [];
  let subscriptionId = 0n;
  let nargs = 0;
  let lost = 0n;
  let end = false;

  const len = bytes.length;
  let pos = 0;

  const varint = (): number => {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (pos >= len) throw new Error("coral: truncated EventBatch");
      const b = bytes[pos++];
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
      if (scale > 2 ** 63) {
        throw new Error("coral: corrupt varint in EventBatch");
      }
    }
  };
  const varint64 = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= len) throw new Error("coral: truncated EventBatch");
      const b = bytes[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, result);
      shift += 7n;
      if (shift > 63n) throw new Error("coral: corrupt varint in EventBatch");
    }
  };
  const slice = (n: number): Uint8Array => {
    if (n > len - pos) throw new Error("coral: truncated EventBatch");
    const s = bytes.subarray(pos, pos + n);
    pos += n;
    return s;
  };
  // A fixed-width column arrives packed (wire type 2) or one element per
  // field (wire type 1 for 8 bytes, 5 for 4).
  const fixed = (col: Column, wire: number, width: number): boolean => {
    if (wire === 2) col.add(slice(varint()));
    else if (wire === (width === 8 ? 1 : 5)) col.add(slice(width));
    else return false;
    return true;
  };

  // A bool column arrives packed (wire type 2) or one varint per field.
  const bools = (pieces: Uint8Array[], wire: number): boolean => {
    if (wire === 2) pieces.push(packedBools(slice(varint())));
    else if (wire === 0) pieces.push(new Uint8Array([varint() === 0 ? 0 : 1]));
    else return false;
    return true;
  };

  while (pos < len) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    let known = true;
    switch (field) {
      case 1:
        if (wire === 0) subscriptionId = varint64();
        else known = false;
        break;
      case 2:
        known = fixed(cols.ts, wire, 8);
        break;
      case 3:
        known = fixed(cols.pid, wire, 4);
        break;
      case 4:
        known = fixed(cols.tid, wire, 4);
        break;
      case 5:
        known = fixed(cols.probe, wire, 4);
        break;
      case 6:
        known = fixed(cols.dur, wire, 8);
        break;
      case 7:
        known = bools(hasReturn, wire);
        break;
      case 8:
        if (wire === 0) nargs = varint() >>> 0;
        else known = false;
        break;
      case 9:
        known = fixed(cols.args, wire, 8);
        break;
      case 10:
        known = fixed(cols.ret, wire, 8);
        break;
      case 11:
        known = fixed(cols.comm, wire, 4);
        break;
      case 12:
        if (wire === 2) commNames.push(utf8.decode(slice(varint())));
        else known = false;
        break;
      case 13:
        if (wire === 0) lost = varint64();
        else known = false;
        break;
      case 14:
        if (wire === 0) end = varint() !== 0;
        else known = false;
        break;
      case 15:
        known = bools(noReturnValue, wire);
        break;
      default:
        known = false;
    }
    if (!known) {
      // Unknown fields (a newer agent) are skipped, as protobuf requires.
      if (wire === 0) varint();
      else if (wire === 1) slice(8);
      else if (wire === 2) slice(varint());
      else if (wire === 5) slice(4);
      else {throw new Error(
          `coral: unsupported wire type ${wire} in EventBatch`,
        );}
    }
  }

  const count = cols.ts.bytes / 8;
  const u32 = (col: Column, name: string, per = 1): Uint32Array => {
    if (col.bytes === 0) return new Uint32Array(count * per);
    const a = new Uint32Array(col.take(4));
    checkLength(name, a.length, count * per);
    return a;
  };
  const words64 = (col: Column, name: string, per = 1): ArrayBuffer => {
    if (col.bytes === 0) return new ArrayBuffer(count * per * 8);
    const buf = col.take(8);
    checkLength(name, buf.byteLength / 8, count * per);
    return buf;
  };
  const tsBuf = cols.ts.bytes === 0 ? new ArrayBuffer(0) : cols.ts.take(8);
  const durBuf = words64(cols.dur, "durationNs");
  const argsBuf = words64(cols.args, "args", nargs);
  const retBuf = words64(cols.ret, "returnValue");
  const boolColumn = (pieces: Uint8Array[], name: string): Uint8Array => {
    let out: Uint8Array;
    if (pieces.length === 0) out = new Uint8Array(count);
    else if (pieces.length === 1) out = pieces[0];
    else {
      out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
      let off = 0;
      for (const p of pieces) {
        out.set(p, off);
        off += p.length;
      }
    }
    checkLength(name, out.length, count);
    return out;
  };

  return {
    subscriptionId,
    count,
    timestampNs: new BigUint64Array(tsBuf),
    timestampWords: new Uint32Array(tsBuf),
    pid: u32(cols.pid, "pid"),
    tid: u32(cols.tid, "tid"),
    probeIndex: u32(cols.probe, "probeIndex"),
    durationNs: new BigUint64Array(durBuf),
    durationWords: new Uint32Array(durBuf),
    hasReturn: boolColumn(hasReturn, "hasReturn"),
    nargs,
    args: new BigInt64Array(argsBuf),
    argsWords: new Uint32Array(argsBuf),
    returnValue: new BigInt64Array(retBuf),
    returnWords: new Uint32Array(retBuf),
    noReturnValue: boolColumn(noReturnValue, "noReturnValue"),
    commIndex: u32(cols.comm, "commIndex"),
    commNames,
    lost,
    end,
    functionNames: [],
  };
}

function checkLength(name: string, got: number, want: number): void {
  if (got !== want) {
    throw new Error(
      `coral: EventBatch.${name} has ${got} entries where ${want} were expected`,
    );
  }
}

// Bools are varints: one byte each unless an encoder pads them, which only
// the slow path has to handle.
function packedBools(bytes: Uint8Array): Uint8Array {
  let simple = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] > 1) {
      simple = false;
      break;
    }
  }
  if (simple) return bytes.slice();
  const out: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    let nonzero = false;
    let b: number;
    do {
      if (i >= bytes.length) {
        throw new Error("coral: truncated bool in EventBatch");
      }
      b = bytes[i++];
      if ((b & 0x7f) !== 0) nonzero = true;
    } while (b >= 0x80);
    out.push(nonzero ? 1 : 0);
  }
  return new Uint8Array(out);
}

/** The signed 64-bit value at `i` of a (low, high) word view, as a number. */
export function int64At(words: Uint32Array, i: number): number {
  return (words[2 * i + 1] | 0) * 4294967296 + words[2 * i];
}

/** The unsigned 64-bit value at `i` of a (low, high) word view, as a number. */
export function uint64At(words: Uint32Array, i: number): number {
  return words[2 * i + 1] * 4294967296 + words[2 * i];
}
