// Start-up: prints the wall-clock time of the first SDK reply.
import * as coral from "@coral/sdk";

await coral.system.getMemory();
console.log(`first_reply_ms ${performance.timeOrigin + performance.now()}`);
await coral.close();
