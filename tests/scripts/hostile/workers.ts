// Each Worker is an isolate and a thread of its own, outside the heap cap.
const src = URL.createObjectURL(new Blob(["const b = new Uint8Array(64 << 20); b.fill(1); setInterval(() => b[0]++, 1000);"],
  { type: "application/javascript" }));
for (let i = 0; i < 64; i++) new Worker(src, { type: "module" });
await new Promise((resolve) => setTimeout(resolve, 5000));
console.log("64 workers ran");
