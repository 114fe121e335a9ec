import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { _setConnector, request, socketConnector } from "./_client.ts";
import type { Call, Result } from "./_client.ts";
import { type FakeAgent, noAgent, tick, withFakeAgent } from "./_test_util.ts";
import * as coral from "./mod.ts";

const cpu = (usagePercent: number): Result => ({
  $case: "cpu",
  value: {
    usagePercent,
    cores: 2,
    load1: 0,
    load5: 0,
    load15: 0,
    sampledAtMs: 0n,
  },
});

Deno.test("requests are pipelined on one connection and matched by id", async () => {
  // Each reply carries the request's own number back, after a random delay,
  // so replies come back out of order.
  const handle = async (call: Call): Promise<Result> => {
    assert(call.$case === "emit");
    await tick(Math.random() * 10);
    return { $case: "emit", value: { id: `id-${call.value.name}` } };
  };
  await withFakeAgent(
    { handle, pipe: { maxRead: 7, maxWrite: 11 } },
    async (agent) => {
      const ids = await Promise.all(
        Array.from({ length: 50 }, (_, i) => coral.emit(`e${i}`, {})),
      );
      assertEquals(ids, Array.from({ length: 50 }, (_, i) => `id-e${i}`));
      assertEquals(agent.connections, 1);
      const reqIds = agent.requests.map((r) => r.id);
      assertEquals(new Set(reqIds).size, reqIds.length);
      assertEquals(agent.requests[0].call?.$case, "hello");
    },
  );
});

Deno.test("the connection is opened lazily, once, and an idle one keeps nothing pending", async () => {
  await withFakeAgent({ handle: () => cpu(5) }, async (agent) => {
    assertEquals(agent.connections, 0);
    await coral.system.getCPU();
    await coral.system.getCPU();
    assertEquals(agent.connections, 1);
    await coral.close();
    await tick();
    assertEquals(agent.open, 0);
    await coral.system.getCPU();
    assertEquals(agent.connections, 2);
  });
});

Deno.test("an error reply rejects with CoralError(code, message)", async () => {
  await withFakeAgent({
    handle: () => ({
      $case: "error",
      value: { code: "DEADLINE_EXCEEDED", message: "too slow" },
    }),
  }, async () => {
    const e = await assertRejects(coral.db.query("SELECT 1"));
    assert(e instanceof coral.CoralError, String(e));
    assertEquals(e.code, "DEADLINE_EXCEEDED");
    assertEquals(e.message, "too slow");
    assertEquals(e.name, "CoralError");
  });
});

Deno.test("a reply of the wrong kind is an INTERNAL error", async () => {
  await withFakeAgent({ handle: () => cpu(1) }, async () => {
    const e = await assertRejects(
      request({ $case: "getMemory", value: {} }, "memory"),
    );
    assert(e instanceof coral.CoralError && e.code === "INTERNAL", String(e));
  });
});

Deno.test("a refused Hello rejects, and the next call tries again", async () => {
  await withFakeAgent(
    { token: "secret", handle: () => cpu(1) },
    async (agent) => {
      const e = await assertRejects(coral.system.getCPU());
      assert(
        e instanceof coral.CoralError && e.code === "PERMISSION_DENIED",
        String(e),
      );
      await assertRejects(coral.params());
      assertEquals(agent.connections, 2);
    },
  );
});

Deno.test("a connection lost mid-request rejects pending calls with UNAVAILABLE, then reconnects", async () => {
  let calls = 0;
  let agent: FakeAgent | undefined;
  await withFakeAgent({
    handle: () => {
      if (++calls === 1) {
        // Hang up on the client instead of answering.
        queueMicrotask(() => agent!.ends[0].close());
        return new Promise<Result>(() => {});
      }
      return cpu(2);
    },
  }, async (a) => {
    agent = a;
    const e = await assertRejects(coral.system.getCPU());
    assert(
      e instanceof coral.CoralError && e.code === "UNAVAILABLE",
      String(e),
    );
    assertEquals((await coral.system.getCPU()).usagePercent, 2);
    assertEquals(a.connections, 2);
  });
});

Deno.test({
  name: "without CORAL_SOCKET calls reject with UNAVAILABLE",
  ignore: !noAgent,
  async fn() {
    await _setConnector(socketConnector);
    const e = await assertRejects(coral.system.getCPU());
    assert(
      e instanceof coral.CoralError && e.code === "UNAVAILABLE",
      String(e),
    );
    assert(e.message.includes("CORAL_SOCKET"), e.message);
  },
});
