import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { hasAgent } from "./_real_agent.ts";
import * as coral from "./mod.ts";

async function stored(id: string): Promise<Record<string, unknown>> {
  const { rows } = await coral.db.query(
    `SELECT name, severity, data FROM emitted_events WHERE id = '${
      id.replaceAll("'", "''")
    }'`,
  );
  assertEquals(rows.length, 1, `event ${id}`);
  return rows[0];
}

Deno.test({
  name:
    "agent: emit stores name, JSON data (bigints as strings) and severity under the id it returns",
  ignore: !hasAgent,
  async fn() {
    const id = await coral.emit(
      "sdk_test",
      { pid: 1, ns: 2n ** 70n, nested: { big: -5n } },
      "warning",
    );
    assert(typeof id === "string" && id.length > 0, `id ${id}`);
    const row = await stored(id);
    assertEquals(row.name, "sdk_test");
    assertEquals(row.severity, "warning");
    assertEquals(JSON.parse(String(row.data)), {
      pid: 1,
      ns: (2n ** 70n).toString(),
      nested: { big: "-5" },
    });
    const plain = await coral.emit("sdk_test_plain");
    assert(plain !== id);
    const row2 = await stored(plain);
    assertEquals(row2.severity, "info");
    assertEquals(JSON.parse(String(row2.data)), {});
    await coral.close();
  },
});

Deno.test({
  name: "agent: emit with an unknown severity or no name is rejected",
  ignore: !hasAgent,
  async fn() {
    // deno-lint-ignore no-explicit-any
    const e = await assertRejects(coral.emit("sdk_test", {}, "loud" as any));
    assert(
      e instanceof coral.CoralError && e.code === "INVALID_ARGUMENT",
      String(e),
    );
    const noName = await assertRejects(coral.emit(""));
    assert(
      noName instanceof coral.CoralError && noName.code === "INVALID_ARGUMENT",
      String(noName),
    );
    await coral.close();
  },
});
