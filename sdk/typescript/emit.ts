// emit(): record a finding of the script with the agent.

import { request } from "./_client.ts";

/** How serious an emitted event is. */
export type Severity = "debug" | "info" | "warning" | "error" | "critical";

// JSON has no bigint; strings keep 64-bit values exact.
function replacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

/**
 * Records an event named `name` with `data` (sent as JSON; bigints become
 * strings) and resolves to its id, by which `emitted_events` can be queried.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const id = await coral.emit("slow_payment", { pid: 42, durationMs: 730 }, "warning");
 * ```
 */
export async function emit(
  name: string,
  data: Record<string, unknown> = {},
  severity: Severity = "info",
): Promise<string> {
  const dataJson = JSON.stringify(data, replacer) ?? "{}";
  const reply = await request({
    $case: "emit",
    value: { name, dataJson, severity },
  }, "emit");
  return reply.id;
}
