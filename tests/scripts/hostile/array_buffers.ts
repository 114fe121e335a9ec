// Off-heap memory: the V8 heap cap does not see ArrayBuffers.
const held: Uint8Array[] = [];
for (let i = 0; i < 256; i++) {
  const chunk = new Uint8Array(16 << 20);
  chunk.fill(1);
  held.push(chunk);
}
console.log(`held ${held.length * 16} MiB`);
