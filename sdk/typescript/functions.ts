// functions.*: the symbols of a binary that can be probed.

import type { FunctionInfo as FunctionMessage } from "./gen/coral/sdk/v1/sdk.ts";
import { request } from "./_client.ts";
import { CoralError, type FunctionInfo } from "./types.ts";

/** Options of {@linkcode list}. */
export interface ListOptions {
  /** Default: the script's target. */
  binary?: string;
  /** At most this many; 0 or absent: the agent's default. */
  limit?: number;
}

/** Options of {@linkcode get}. */
export interface GetOptions {
  /** Default: the script's target. */
  binary?: string;
}

function toInfo(f: FunctionMessage): FunctionInfo {
  return {
    name: f.name,
    symbol: f.symbol,
    address: f.address,
    size: Number(f.size),
    binary: f.binary,
  };
}

/**
 * Functions of a binary whose name matches `pattern`, a wildcard (`*`,
 * `?`); all of them when it is absent.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * for (const fn of await coral.functions.list("http_*", { limit: 20 })) console.log(fn.name);
 * ```
 */
export async function list(
  pattern = "",
  opts: ListOptions = {},
): Promise<FunctionInfo[]> {
  const reply = await request({
    $case: "listFunctions",
    value: { binary: opts.binary ?? "", pattern, limit: opts.limit ?? 0 },
  }, "functions");
  return reply.functions.map(toInfo);
}

/**
 * One function by name; rejects with a {@linkcode CoralError} of code
 * `NOT_FOUND` if the binary has none.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const fn = await coral.functions.get("coral_work");
 * console.log(fn.size, "bytes at", fn.address.toString(16));
 * ```
 */
export async function get(
  name: string,
  opts: GetOptions = {},
): Promise<FunctionInfo> {
  const reply = await request({
    $case: "getFunction",
    value: { binary: opts.binary ?? "", name },
  }, "function");
  if (reply.function === undefined) {
    throw new CoralError("NOT_FOUND", `no function ${JSON.stringify(name)}`);
  }
  return toInfo(reply.function);
}
