import * as coral from "@coral/sdk";

let seen = 0;
for await (const _ of coral.trace.uprobe("coral_work")) {
  if (++seen === 5) throw new Error("crashed on purpose mid-stream");
}
