// Emits far past the limits: huge emits, then a flood of small ones.
// Prints, per phase, how many were accepted and which error codes came back.
import * as coral from "@coral/sdk";

async function flood(phase: string, count: number, size: number): Promise<void> {
  const blob = "x".repeat(size);
  let ok = 0;
  const errors: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    try {
      await coral.emit("flood", { i, blob });
      ok++;
    } catch (e) {
      const code = (e as { code?: string }).code ?? "none";
      errors[code] = (errors[code] ?? 0) + 1;
    }
  }
  console.log(`${phase}: ${ok} accepted, refused ${JSON.stringify(errors)}`);
}

await flood("10MB", 11, 10 << 20);
await flood("1MB", 107, 1 << 20);
await flood("60KB", 3000, 60 << 10);
