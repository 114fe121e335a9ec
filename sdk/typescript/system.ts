// system.*: the host's CPU and memory, as the agent samples them.

import { request } from "./_client.ts";
import type { CpuInfo, MemoryInfo } from "./types.ts";

/**
 * CPU use over the agent's last sample interval, and the load averages.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const cpu = await coral.system.getCPU();
 * if (cpu.usagePercent > 90) await coral.emit("cpu_high", { ...cpu }, "warning");
 * ```
 */
export async function getCPU(): Promise<CpuInfo> {
  const r = await request({ $case: "getCpu", value: {} }, "cpu");
  return {
    usagePercent: r.usagePercent,
    cores: r.cores,
    load1: r.load1,
    load5: r.load5,
    load15: r.load15,
  };
}

/**
 * Memory totals of the host, in bytes.
 *
 * @example
 * ```ts ignore
 * import * as coral from "@coral/sdk";
 * const mem = await coral.system.getMemory();
 * console.log(`${(mem.availableBytes / 2 ** 30).toFixed(1)} GiB free`);
 * ```
 */
export async function getMemory(): Promise<MemoryInfo> {
  const r = await request({ $case: "getMemory", value: {} }, "memory");
  return {
    totalBytes: Number(r.totalBytes),
    availableBytes: Number(r.availableBytes),
    usedBytes: Number(r.usedBytes),
    usagePercent: r.usagePercent,
  };
}
