import { assert, assertEquals } from "./_assert.ts";
import { hasAgent } from "./_real_agent.ts";
import * as coral from "./mod.ts";

Deno.test({
  name: "agent: system.getCPU answers plain, sane numbers",
  ignore: !hasAgent,
  async fn() {
    const cpu = await coral.system.getCPU();
    assertEquals(Object.keys(cpu).sort(), [
      "cores",
      "load1",
      "load15",
      "load5",
      "usagePercent",
    ]);
    for (const v of Object.values(cpu)) assertEquals(typeof v, "number");
    assert(Number.isInteger(cpu.cores) && cpu.cores >= 1, `cores ${cpu.cores}`);
    assert(
      cpu.usagePercent >= 0 && cpu.usagePercent <= 100,
      `usage ${cpu.usagePercent}`,
    );
    assert(cpu.load1 >= 0 && cpu.load5 >= 0 && cpu.load15 >= 0);
    await coral.close();
  },
});

Deno.test({
  name: "agent: system.getMemory answers plain, sane numbers",
  ignore: !hasAgent,
  async fn() {
    const mem = await coral.system.getMemory();
    assertEquals(Object.keys(mem).sort(), [
      "availableBytes",
      "totalBytes",
      "usagePercent",
      "usedBytes",
    ]);
    for (const v of Object.values(mem)) assertEquals(typeof v, "number");
    assert(
      mem.totalBytes > 0 && mem.availableBytes <= mem.totalBytes &&
        mem.usedBytes <= mem.totalBytes,
      JSON.stringify(mem),
    );
    assert(
      mem.usagePercent >= 0 && mem.usagePercent <= 100,
      `usage ${mem.usagePercent}`,
    );
    await coral.close();
  },
});
