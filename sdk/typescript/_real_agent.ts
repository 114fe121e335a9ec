// Test helpers for the tests that run against a real agent: the project's
// pytest harness (tests/test_sdk_typescript.py) starts `coral agent` on a
// socket, with a target that calls coral_work(i, 2*i, sleep_us) = 3*i about
// every millisecond, and runs `deno test` with CORAL_SOCKET and CORAL_TOKEN.
// Without CORAL_SOCKET these tests are ignored.

import { assert, assertEquals } from "./_assert.ts";
import { _setConnector, socketConnector } from "./_client.ts";
import type { Transport } from "./_framing.ts";
import type { ProbeEvent, ProbeStream } from "./mod.ts";

/**
 * The socket of the real agent to test against; without env permission
 * there is none.
 */
export function agentSocket(): string | undefined {
  const state =
    Deno.permissions.querySync({ name: "env", variable: "CORAL_SOCKET" }).state;
  return state === "granted"
    ? Deno.env.get("CORAL_SOCKET") || undefined
    : undefined;
}

/** Whether a real agent is there: tests that need one use `ignore: !hasAgent`. */
export const hasAgent: boolean = agentSocket() !== undefined;

/**
 * Runs `fn` with connections still going to the real agent's socket, but
 * counted; returns what `fn` returned and how many connections were opened.
 */
export async function countingConnections<T>(
  fn: (opened: () => number) => Promise<T>,
): Promise<T> {
  let n = 0;
  await _setConnector((): Promise<Transport> => {
    n++;
    return socketConnector();
  });
  try {
    return await fn(() => n);
  } finally {
    await _setConnector(socketConnector);
  }
}

/**
 * Attaches `stream` and takes up to `max` events from it, closing it `ms`
 * after it was attached at the latest (a probe that never fires yields
 * nothing).
 */
export async function collect(
  stream: ProbeStream,
  max: number,
  ms = 5000,
): Promise<ProbeEvent[]> {
  try {
    await stream.ready();
  } catch (e) {
    stream.close();
    throw e;
  }
  const out: ProbeEvent[] = [];
  const timer = setTimeout(() => stream.close(), ms);
  try {
    for await (const e of stream) if (out.push(e) >= max) break;
  } finally {
    clearTimeout(timer);
  }
  return out;
}

/**
 * Checks events of `coral_work(i, 2i, sleep_us) = 3i` with at least two
 * arguments captured; consecutive ones must be consecutive calls unless the
 * stream lost events.
 */
export function checkWork(events: ProbeEvent[], lost = 0): void {
  for (const [k, e] of events.entries()) {
    assertEquals(e.functionName, "coral_work");
    assert(e.args.length >= 2, `args ${e.args}`);
    assertEquals(e.args[1], 2 * e.args[0]);
    assertEquals(e.returnValue, 3 * e.args[0]);
    assert(
      e.durationNs !== null && e.durationNs > 0,
      `durationNs ${e.durationNs}`,
    );
    if (k > 0 && lost === 0) {
      assertEquals(e.args[0], events[k - 1].args[0] + 1, "consecutive calls");
    }
  }
}

/** The service name of the target for metrics.* and traces.*: its basename. */
export function serviceOf(binary: string): string {
  return binary.split("/").pop() ?? "";
}
