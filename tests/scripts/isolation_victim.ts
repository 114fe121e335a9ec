// Leaves secrets another script must not read: its params (db_password),
// its code (this marker: VICTIM-CODE-7f3a), a log line and an emit.
import * as coral from "@coral/sdk";

const { db_password } = await coral.params();
console.log(`victim log ${db_password}`);
await coral.emit("victim_secret", { secret: db_password });
