import { Request } from "./gen/coral/sdk/v1/sdk.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { request } from "./_client.ts";
import { countingConnections, hasAgent } from "./_real_agent.ts";
import {
  errorFrame,
  HELLO_REPLY,
  responseFrame,
  withScriptedPeer,
} from "./_scripted_peer.ts";
import * as coral from "./mod.ts";

// Parsing, with a scripted peer: replies in an order a test chooses, an
// error of id 0, a connection cut with a call pending.

Deno.test("replies are matched by id, not by order, on one pipelined connection", async () => {
  const n = 20;
  // Ids 2..n+1 answered last first, each reply naming its own id.
  const replies = Array.from({ length: n }, (_, k) => BigInt(n + 1 - k)).map(
    (id) =>
      responseFrame({ id, result: { $case: "emit", value: { id: `r${id}` } } }),
  );
  await withScriptedPeer([{
    steps: [
      { afterFrames: 1, write: [HELLO_REPLY] },
      { afterFrames: 1 + n, write: replies },
    ],
    pipe: { maxRead: 7, maxWrite: 11 },
  }], async (peer) => {
    const got = await Promise.all(
      Array.from({ length: n }, (_, i) => coral.emit(`e${i}`, {})),
    );
    assertEquals(peer.connections.length, 1);
    const sent = peer.connections[0].frames.map((f) => Request.decode(f));
    assertEquals(sent[0].call?.$case, "hello");
    assertEquals(sent[0].id, 1n);
    // Each call resolved to the reply carrying its own request's id.
    for (const req of sent.slice(1)) {
      assert(req.call?.$case === "emit", String(req.call?.$case));
      const i = Number(req.call.value.name.slice(1));
      assertEquals(got[i], `r${req.id}`, req.call.value.name);
    }
    assertEquals(new Set(sent.map((r) => r.id)).size, n + 1);
  });
});

Deno.test("an error of id 0 rejects every pending call with its code; the next call reconnects", async () => {
  await withScriptedPeer([
    {
      steps: [
        { afterFrames: 1, write: [HELLO_REPLY] },
        {
          afterFrames: 3,
          write: [errorFrame(0n, "INVALID_ARGUMENT", "malformed frame")],
        },
      ],
      hangUp: true,
    },
    {
      steps: [
        { afterFrames: 1, write: [HELLO_REPLY] },
        {
          afterFrames: 2,
          write: [responseFrame({
            id: 2n,
            result: { $case: "emit", value: { id: "again" } },
          })],
        },
      ],
    },
  ], async (peer) => {
    const errors = await Promise.all([
      assertRejects(coral.emit("a", {})),
      assertRejects(coral.emit("b", {})),
    ]);
    for (const e of errors) {
      assert(e instanceof coral.CoralError, String(e));
      assertEquals(e.code, "INVALID_ARGUMENT");
      assertEquals(e.message, "malformed frame");
    }
    assertEquals(await coral.emit("c", {}), "again");
    assertEquals(peer.connections.length, 2);
  });
});

Deno.test("a connection cut with a call pending rejects it with UNAVAILABLE", async () => {
  await withScriptedPeer([{
    steps: [
      { afterFrames: 1, write: [HELLO_REPLY] },
      { afterFrames: 2, write: [] },
    ],
    hangUp: true,
  }], async () => {
    const e = await assertRejects(coral.emit("a", {}));
    assert(
      e instanceof coral.CoralError && e.code === "UNAVAILABLE",
      String(e),
    );
  });
});

Deno.test("without CORAL_SOCKET calls reject with UNAVAILABLE", async () => {
  const saved = Deno.env.get("CORAL_SOCKET");
  Deno.env.delete("CORAL_SOCKET");
  try {
    await coral.close();
    const e = await assertRejects(coral.system.getCPU());
    assert(
      e instanceof coral.CoralError && e.code === "UNAVAILABLE",
      String(e),
    );
    assert(e.message.includes("CORAL_SOCKET"), e.message);
  } finally {
    if (saved !== undefined) Deno.env.set("CORAL_SOCKET", saved);
  }
});

// With the real agent.

Deno.test({
  name:
    "agent: the control connection opens lazily, once, and again after close()",
  ignore: !hasAgent,
  async fn() {
    await coral.close();
    await countingConnections(async (opened) => {
      assertEquals(opened(), 0);
      await coral.system.getCPU();
      await coral.system.getMemory();
      await coral.params();
      assertEquals(opened(), 1);
      await coral.close();
      await coral.system.getCPU();
      assertEquals(opened(), 2);
    });
    await coral.close();
  },
});

Deno.test({
  name:
    "agent: concurrent calls share one connection and each gets its own reply",
  ignore: !hasAgent,
  async fn() {
    await countingConnections(async (opened) => {
      const [ids, one, cpu, mem] = await Promise.all([
        Promise.all(
          Array.from(
            { length: 30 },
            (_, i) => coral.emit("sdk_test_pipe", { i }),
          ),
        ),
        coral.db.query("SELECT 1 AS one"),
        coral.system.getCPU(),
        coral.system.getMemory(),
      ]);
      assertEquals(new Set(ids).size, 30);
      assertEquals(one.rows, [{ one: 1 }]);
      assert(cpu.cores >= 1 && mem.totalBytes > 0);
      assertEquals(opened(), 1);
      // Each id is the event of its own call.
      const { rows } = await coral.db.query(
        `SELECT id, data->>'i' AS i FROM emitted_events WHERE id IN (${
          ids.map((id) => `'${id.replaceAll("'", "''")}'`).join(", ")
        })`,
      );
      assertEquals(rows.length, 30);
      for (const row of rows) {
        assertEquals(ids[Number(row.i)], row.id, `event ${row.i}`);
      }
    });
    await coral.close();
  },
});

Deno.test({
  name:
    "agent: a wrong token is refused with PERMISSION_DENIED, and the next call tries again",
  ignore: !hasAgent,
  async fn() {
    await coral.close();
    const token = Deno.env.get("CORAL_TOKEN") ?? "";
    Deno.env.set("CORAL_TOKEN", token + "-wrong");
    try {
      const e = await assertRejects(coral.system.getCPU());
      assert(
        e instanceof coral.CoralError && e.code === "PERMISSION_DENIED",
        String(e),
      );
    } finally {
      Deno.env.set("CORAL_TOKEN", token);
    }
    assert((await coral.system.getCPU()).cores >= 1);
    await coral.close();
  },
});

Deno.test({
  name: "agent: a reply of the wrong kind is an INTERNAL error",
  ignore: !hasAgent,
  async fn() {
    // The agent answers GetMemory with memory, not the cpu asked for here.
    const e = await assertRejects(
      request({ $case: "getMemory", value: {} }, "cpu"),
    );
    assert(e instanceof coral.CoralError && e.code === "INTERNAL", String(e));
    assert(e.message.includes("memory"), e.message);
    await coral.close();
  },
});

Deno.test({
  name: "agent: an agent error rejects with CoralError(code, message)",
  ignore: !hasAgent,
  async fn() {
    const e = await assertRejects(coral.db.query("SELEC nonsense"));
    assert(e instanceof coral.CoralError, String(e));
    assertEquals(e.code, "INVALID_ARGUMENT");
    assertEquals(e.name, "CoralError");
    assert(e.message.length > 0);
    assertEquals(String(e), `CoralError INVALID_ARGUMENT: ${e.message}`);
    await coral.close();
  },
});
