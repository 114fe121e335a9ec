// The peer: the same count and filter over JSON lines that a bcc Python
// callback writes to a Unix socket.
const params = JSON.parse(Deno.args[0]);
const conn = await Deno.connect({ transport: "unix", path: params.socket });
const decoder = new TextDecoder();
let seen = 0;
let passed = 0;
let first = 0;
let rest = "";
const buf = new Uint8Array(1 << 20);
outer: while (true) {
  const n = await conn.read(buf);
  if (n === null) break;
  if (seen === 0) first = performance.now();
  const text = rest + decoder.decode(buf.subarray(0, n));
  const lines = text.split("\n");
  rest = lines.pop()!;
  for (const line of lines) {
    const e = JSON.parse(line);
    seen++;
    if (e.duration_ns % 3 === 0) passed++;
    if (seen >= params.total) break outer;
  }
}
const seconds = (performance.now() - first) / 1000;
console.log(JSON.stringify({ seen, passed, seconds }));
conn.close();
