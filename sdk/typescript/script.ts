// What the script was started with, and releasing the agent connection.

import { closeClient, hello } from "./_client.ts";
import type { Target } from "./types.ts";

/**
 * The `--param key=value` pairs given to `coral run`.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const threshold = Number((await coral.params()).thresholdMs ?? "500");
 * ```
 */
export async function params(): Promise<Record<string, string>> {
  return { ...(await hello()).params };
}

/**
 * The binary and process the script was started against; `trace.*` probes
 * them unless told otherwise.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const { binary, pid } = await coral.target();
 * console.log(`tracing ${binary} (pid ${pid})`);
 * ```
 */
export async function target(): Promise<Target> {
  const t = (await hello()).target;
  return { binary: t?.binary ?? "", pid: t?.pid ?? 0 };
}

/**
 * Closes the control connection. Not needed for the script to exit (an idle
 * connection does not keep it alive); a later call reconnects.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * await coral.emit("done", {});
 * await coral.close();
 * ```
 */
export function close(): Promise<void> {
  return closeClient();
}
