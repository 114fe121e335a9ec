// Emits distinct 45 KB findings (within the size limit) for ever, going on
// past errors: only the agent can end this run.
import * as coral from "@coral/sdk";

const bytes = new Uint8Array(22000);
for (;;) {
  crypto.getRandomValues(bytes);
  try {
    await coral.emit("fill", { b: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") });
  } catch {
    await new Promise((r) => setTimeout(r, 10));
  }
}
