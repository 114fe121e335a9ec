import { assert, assertEquals } from "./_assert.ts";
import { noAgent, withFakeAgent } from "./_test_util.ts";
import * as coral from "./mod.ts";

Deno.test("system.getCPU and getMemory convert to plain numbers", async () => {
  await withFakeAgent({
    handle: (call) =>
      call.$case === "getCpu"
        ? {
          $case: "cpu",
          value: {
            usagePercent: 12.5,
            cores: 8,
            load1: 1,
            load5: 0.5,
            load15: 0.25,
            sampledAtMs: 1n,
          },
        }
        : {
          $case: "memory",
          value: {
            totalBytes: 16n << 30n,
            availableBytes: 4n << 30n,
            usedBytes: 12n << 30n,
            usagePercent: 75,
          },
        },
  }, async () => {
    assertEquals(await coral.system.getCPU(), {
      usagePercent: 12.5,
      cores: 8,
      load1: 1,
      load5: 0.5,
      load15: 0.25,
    });
    assertEquals(await coral.system.getMemory(), {
      totalBytes: 16 * 2 ** 30,
      availableBytes: 4 * 2 ** 30,
      usedBytes: 12 * 2 ** 30,
      usagePercent: 75,
    });
  });
});

Deno.test({
  name: "agent: system.getCPU and getMemory are sane",
  ignore: noAgent,
  async fn() {
    const cpu = await coral.system.getCPU();
    assert(cpu.cores >= 1, `cores ${cpu.cores}`);
    assert(
      cpu.usagePercent >= 0 && cpu.usagePercent <= 100,
      `usage ${cpu.usagePercent}`,
    );
    assert(cpu.load1 >= 0 && cpu.load5 >= 0 && cpu.load15 >= 0);
    const mem = await coral.system.getMemory();
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
