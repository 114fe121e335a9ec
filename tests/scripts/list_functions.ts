// Lists the functions matching --param pattern in the script's target and
// gets --param name there, with the file each is in.
import * as coral from "@coral/sdk";

const { pattern, name } = await coral.params();
const listed = (await coral.functions.list(pattern)).map((f) => ({ name: f.name, binary: f.binary }));
const got = await coral.functions.get(name);
await coral.emit("functions", { listed, got: { name: got.name, binary: got.binary } });
