// Run with every Deno permission granted, as if the script had escaped
// Deno's own sandbox: what the OS still refuses is what confinement gives.
const [port, writePath] = Deno.args;
const results: Record<string, string> = {};
async function attempt(name: string, f: () => unknown) {
  try {
    await f();
    results[name] = "allowed";
  } catch (e) {
    results[name] = (e as Error).name;
  }
}
await attempt("read /etc/passwd", () => Deno.readTextFileSync("/etc/passwd"));
await attempt("write /tmp", () => Deno.writeTextFileSync(writePath, "x"));
await attempt("tcp connect", async () => (await Deno.connect({ hostname: "127.0.0.1", port: Number(port) })).close());
await attempt("run /bin/sh", () => new Deno.Command("/bin/sh", { args: ["-c", "true"] }).outputSync());
results["uid"] = String(Deno.uid());
console.log(JSON.stringify(results));
