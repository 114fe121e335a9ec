// Opens one stream more than a script may have, and prints what each got.
import * as coral from "@coral/sdk";

const streams = [];
for (let i = 0; i < 9; i++) {
  const stream = coral.trace.uprobe("coral_work");
  try {
    await stream.ready();
    streams.push(stream);
    console.log(`stream ${i + 1}: open`);
  } catch (e) {
    console.log(`stream ${i + 1}: ${(e as { code?: string }).code}: ${(e as Error).message}`);
  }
}
for (const s of streams) s.close();
