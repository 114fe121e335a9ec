import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  encodeFrame,
  FrameReader,
  type Transport,
  writeAll,
} from "./_framing.ts";
import { memoryPipe } from "./_scripted_peer.ts";

// A transport whose reads return exactly the given chunks, in order.
function chunks(parts: Uint8Array[]): Transport {
  let i = 0;
  return {
    read(p) {
      if (i >= parts.length) return Promise.resolve(null);
      const c = parts[i];
      if (c.length > p.length) {
        throw new Error("test chunk larger than the read buffer");
      }
      p.set(c);
      i++;
      return Promise.resolve(c.length);
    },
    write: () => Promise.reject(new Error("read-only")),
    close() {},
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function message(len: number, seed: number): Uint8Array {
  const m = new Uint8Array(len);
  for (let i = 0; i < len; i++) m[i] = (i * 31 + seed) & 0xff;
  return m;
}

async function readAll(reader: FrameReader): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let f = await reader.next(); f !== null; f = await reader.next()) {
    out.push(f.slice());
  }
  return out;
}

Deno.test("encodeFrame prefixes the length as a varint", () => {
  assertEquals(encodeFrame(new Uint8Array([7, 8])), new Uint8Array([2, 7, 8]));
  assertEquals(encodeFrame(new Uint8Array()), new Uint8Array([0]));
  assertEquals(
    encodeFrame(new Uint8Array(127)).subarray(0, 1),
    new Uint8Array([127]),
  );
  assertEquals(
    encodeFrame(new Uint8Array(128)).subarray(0, 2),
    new Uint8Array([0x80, 1]),
  );
  assertEquals(
    encodeFrame(new Uint8Array(300)).subarray(0, 2),
    new Uint8Array([0xac, 2]),
  );
  assertEquals(
    encodeFrame(new Uint8Array(70000)).subarray(0, 3),
    new Uint8Array([0xf0, 0xa2, 4]),
  );
});

Deno.test("FrameReader: many frames in one read, empty frames included", async () => {
  const msgs = [message(3, 1), message(0, 0), message(200, 2), message(1, 3)];
  const reader = new FrameReader(chunks([concat(msgs.map(encodeFrame))]));
  assertEquals(await readAll(reader), msgs);
});

Deno.test("FrameReader: frames split byte by byte", async () => {
  const msgs = [message(5, 1), message(300, 2), message(0, 0), message(129, 9)];
  const bytes = concat(msgs.map(encodeFrame));
  const parts = Array.from(bytes, (b) => new Uint8Array([b]));
  assertEquals(await readAll(new FrameReader(chunks(parts))), msgs);
});

Deno.test("FrameReader: a frame larger than the buffer grows it", async () => {
  const msgs = [message(10, 1), message(1_000_000, 2), message(10, 3)];
  const [a, b] = memoryPipe();
  const writing = (async () => {
    for (const m of msgs) await writeAll(a, encodeFrame(m));
    a.close();
  })();
  const reader = new FrameReader(b, { initialBytes: 16 });
  assertEquals(await readAll(reader), msgs);
  await writing;
});

Deno.test("FrameReader: random splits and partial writes, in both directions", async () => {
  const msgs = Array.from(
    { length: 300 },
    (_, i) => message(Math.floor(Math.random() * 5000), i),
  );
  const [a, b] = memoryPipe({ maxRead: 700, maxWrite: 900, highWater: 4096 });
  const writing = (async () => {
    for (const m of msgs) await writeAll(a, encodeFrame(m));
    a.close();
  })();
  assertEquals(await readAll(new FrameReader(b, { initialBytes: 64 })), msgs);
  await writing;
});

Deno.test("FrameReader: tryNext returns only complete frames", async () => {
  const first = encodeFrame(message(10, 1));
  const reader = new FrameReader(
    chunks([
      first.subarray(0, 5),
      concat([first.subarray(5), encodeFrame(message(2, 2))]),
    ]),
  );
  assertEquals(reader.tryNext(), undefined);
  assertEquals((await reader.next())!.slice(), message(10, 1));
  assertEquals(reader.tryNext()!.slice(), message(2, 2));
  assertEquals(reader.tryNext(), undefined);
  assertEquals(reader.buffered, 0);
  assertEquals(await reader.next(), null);
});

Deno.test("FrameReader: end of stream inside a frame rejects, between frames is null", async () => {
  const whole = encodeFrame(message(50, 1));
  const cut = new FrameReader(chunks([whole.subarray(0, 20)]));
  const e = await assertRejects(cut.next());
  assert(String(e).includes("middle of a frame"), String(e));
  const clean = new FrameReader(chunks([whole]));
  assert((await clean.next()) !== null);
  assertEquals(await clean.next(), null);
});

Deno.test("FrameReader: an absurd length is refused", async () => {
  const reader = new FrameReader(
    chunks([new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])]),
    { maxFrameBytes: 1024 },
  );
  await assertRejects(reader.next());
});
