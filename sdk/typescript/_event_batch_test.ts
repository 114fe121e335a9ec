import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { EventBatch } from "./gen/coral/sdk/v1/sdk.ts";
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  decodeEventBatch,
  type EventColumns,
  int64At,
  uint64At,
} from "./_event_batch.ts";

// Deterministic, so a failure reproduces.
let seed = 0x2545f491;
function rand(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: T[]): T => xs[int(xs.length)];

function u64(): bigint {
  return pick([
    0n,
    1n,
    2n ** 64n - 1n,
    2n ** 53n + 1n,
    BigInt(int(1e9)),
    BigInt.asUintN(64, (BigInt(int(2 ** 32)) << 32n) | BigInt(int(2 ** 32))),
  ]);
}
function i64(): bigint {
  return pick([
    0n,
    -1n,
    -(2n ** 63n),
    2n ** 63n - 1n,
    -(2n ** 53n) - 3n,
    BigInt(int(2000)) - 1000n,
    BigInt.asIntN(64, (BigInt(int(2 ** 32)) << 32n) | BigInt(int(2 ** 32))),
  ]);
}
const u32 = () => pick([0, 1, 2 ** 32 - 1, int(2 ** 32), int(100)]);

function randomBatch(count: number, nargs: number): EventBatch {
  const comms = Array.from(
    { length: 1 + int(4) },
    (_, i) => pick(["worker", "kworker/0:1", "café", "", `t${i}`]),
  );
  const n = (f: () => unknown) => Array.from({ length: count }, f);
  return {
    subscriptionId: u64(),
    timestampNs: n(u64) as bigint[],
    pid: n(u32) as number[],
    tid: n(u32) as number[],
    probeIndex: n(() => int(3)) as number[],
    durationNs: n(u64) as bigint[],
    hasReturn: n(() => rand() < 0.7) as boolean[],
    nargs,
    args: Array.from({ length: count * nargs }, i64),
    returnValue: n(i64) as bigint[],
    commIndex: n(() => int(comms.length)) as number[],
    commNames: comms,
    lost: pick([0n, 5n, 2n ** 64n - 1n]),
    end: rand() < 0.3,
    noReturnValue: rand() < 0.5 ? [] : n(() => rand() < 0.2) as boolean[],
  };
}

// The columns in the generated code's shape, to compare against its decoder.
function asMessage(c: EventColumns): EventBatch {
  return {
    subscriptionId: c.subscriptionId,
    timestampNs: Array.from(c.timestampNs),
    pid: Array.from(c.pid),
    tid: Array.from(c.tid),
    probeIndex: Array.from(c.probeIndex),
    durationNs: Array.from(c.durationNs),
    hasReturn: Array.from(c.hasReturn, (b) => b !== 0),
    nargs: c.nargs,
    args: Array.from(c.args),
    returnValue: Array.from(c.returnValue),
    commIndex: Array.from(c.commIndex),
    commNames: c.commNames,
    lost: c.lost,
    end: c.end,
    noReturnValue: Array.from(c.noReturnValue, (b) => b !== 0),
  };
}

function checkAgainstGenerated(bytes: Uint8Array): EventColumns {
  const ours = decodeEventBatch(bytes);
  const theirs = EventBatch.decode(bytes);
  // The agent leaves no_return_value out when it is all false: ours reads
  // that as all false, the generated decoder as empty.
  if (theirs.noReturnValue.length === 0) {
    theirs.noReturnValue = new Array(theirs.timestampNs.length).fill(false);
  }
  assertEquals(asMessage(ours), theirs);
  assertEquals(ours.count, theirs.timestampNs.length);
  // The number views agree with the bigint columns.
  for (let i = 0; i < ours.count; i++) {
    assertEquals(
      uint64At(ours.timestampWords, i),
      Number(theirs.timestampNs[i]),
    );
    assertEquals(uint64At(ours.durationWords, i), Number(theirs.durationNs[i]));
    assertEquals(int64At(ours.returnWords, i), Number(theirs.returnValue[i]));
  }
  for (let k = 0; k < theirs.args.length; k++) {
    assertEquals(int64At(ours.argsWords, k), Number(theirs.args[k]));
  }
  return ours;
}

Deno.test("decodeEventBatch matches the generated decoder on random batches", () => {
  for (let round = 0; round < 300; round++) {
    const count = pick([0, 1, 2, 7, int(300), int(3000)]);
    const nargs = pick([0, 6, int(7)]);
    const batch = randomBatch(count, nargs);
    checkAgainstGenerated(EventBatch.encode(batch).finish());
  }
});

Deno.test("decodeEventBatch: edge batches (empty, end only, nargs 0 and 6, extremes)", () => {
  assertEquals(decodeEventBatch(new Uint8Array()).count, 0);
  const end = checkAgainstGenerated(
    EventBatch.encode(EventBatch.fromPartial({ end: true, lost: 12n }))
      .finish(),
  );
  assert(end.end && end.count === 0 && end.lost === 12n);
  const six = randomBatch(5, 6);
  six.args = six.args.map((_, k) =>
    [-(2n ** 63n), 2n ** 63n - 1n, -1n, 0n, 1n, -42n][k % 6]
  );
  const c = checkAgainstGenerated(EventBatch.encode(six).finish());
  assertEquals(c.nargs, 6);
  assertEquals(int64At(c.argsWords, 5), -42);
  assertEquals(int64At(c.argsWords, 2), -1);
  checkAgainstGenerated(EventBatch.encode(randomBatch(4, 0)).finish());
});

Deno.test("decodeEventBatch copies: it works at any alignment and outlives its input", () => {
  const bytes = EventBatch.encode(randomBatch(50, 3)).finish();
  for (let offset = 0; offset < 8; offset++) {
    const big = new Uint8Array(bytes.length + 16);
    big.set(bytes, offset);
    const view = big.subarray(offset, offset + bytes.length);
    const ours = decodeEventBatch(view);
    const expected = asMessage(ours);
    big.fill(0xee);
    assertEquals(asMessage(ours), expected);
    assertEquals(expected, EventBatch.decode(bytes));
  }
});

// What another encoder may legally write: unpacked elements, a packed field
// in two pieces, unknown fields.
Deno.test("decodeEventBatch: unpacked, split and unknown fields", () => {
  const w = new BinaryWriter();
  w.uint32((1 << 3) | 0).uint64(77n);
  w.uint32((99 << 3) | 0).uint64(123456789n); // unknown varint
  w.uint32((2 << 3) | 1).fixed64(10n); // unpacked timestamp
  w.uint32((2 << 3) | 2).fork().fixed64(20n).fixed64(30n).join(); // then packed
  w.uint32((3 << 3) | 5).fixed32(1);
  w.uint32((3 << 3) | 2).fork().fixed32(2).fixed32(3).join();
  w.uint32((100 << 3) | 2).bytes(new Uint8Array([1, 2, 3])); // unknown bytes
  w.uint32((7 << 3) | 0).bool(true); // unpacked bool
  w.uint32((7 << 3) | 2).fork().bool(false).bool(true).join();
  w.uint32((8 << 3) | 0).uint32(1);
  w.uint32((9 << 3) | 1).sfixed64(-5n);
  w.uint32((9 << 3) | 2).fork().sfixed64(6n).sfixed64(-7n).join();
  w.uint32((101 << 3) | 5).fixed32(9); // unknown fixed32
  w.uint32((102 << 3) | 1).fixed64(9n); // unknown fixed64
  w.uint32((12 << 3) | 2).string("a");
  w.uint32((14 << 3) | 0).bool(true);
  const bytes = w.finish();
  const c = decodeEventBatch(bytes);
  const g = EventBatch.decode(bytes);
  // Columns left out are zero-filled by ours and empty in the generated one.
  for (
    const key of [
      "subscriptionId",
      "timestampNs",
      "pid",
      "hasReturn",
      "nargs",
      "args",
      "commNames",
      "end",
    ] as const
  ) {
    assertEquals(asMessage(c)[key], g[key], key);
  }
  assertEquals(Array.from(c.timestampNs), [10n, 20n, 30n]);
  assertEquals(Array.from(c.pid), [1, 2, 3]);
  assertEquals(Array.from(c.hasReturn), [1, 0, 1]);
  assertEquals(Array.from(c.args), [-5n, 6n, -7n]);
  assertEquals(c.subscriptionId, 77n);
});

Deno.test("decodeEventBatch: absent columns read as zeros, wrong lengths throw", () => {
  const c = decodeEventBatch(
    EventBatch.encode(
      EventBatch.fromPartial({ timestampNs: [1n, 2n], pid: [5, 6], nargs: 2 }),
    ).finish(),
  );
  assertEquals(c.count, 2);
  assertEquals(Array.from(c.tid), [0, 0]);
  assertEquals(Array.from(c.hasReturn), [0, 0]);
  assertEquals(Array.from(c.noReturnValue), [0, 0]);
  assertEquals(Array.from(c.args), [0n, 0n, 0n, 0n]);
  assertEquals(Array.from(c.commIndex), [0, 0]);
  const bad = EventBatch.encode(
    EventBatch.fromPartial({ timestampNs: [1n, 2n], pid: [5] }),
  ).finish();
  assert(
    String(assertThrows(() => decodeEventBatch(bad))).includes("pid has 1"),
  );
  const badArgs = EventBatch.encode(
    EventBatch.fromPartial({ timestampNs: [1n], nargs: 2, args: [1n] }),
  ).finish();
  assertThrows(() => decodeEventBatch(badArgs));
  assertThrows(() =>
    decodeEventBatch(
      EventBatch.encode(randomBatch(3, 1)).finish().subarray(0, 20),
    )
  );
});
