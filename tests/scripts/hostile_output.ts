// Writes what once exhausted the agent's log pump: 10 MB and 200 MB without
// a newline, a burst of long lines past the bytes per execution, a flood of
// short lines past the line rate.
const enc = new TextEncoder();
function write(bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}
const mb = new Uint8Array(1 << 20).fill(0x61); // "a"
write(enc.encode("first line\n"));
for (let i = 0; i < 10; i++) write(mb);
write(enc.encode("\n"));
for (let i = 0; i < 200; i++) write(mb);
write(enc.encode("\n"));
const long = enc.encode("y".repeat(16 << 10) + "\n");
for (let i = 0; i < 1500; i++) write(long);
for (let i = 0; i < 5000; i++) write(enc.encode(`short ${i}\n`));
