// Tiny assertions for the tests: scripts run with --no-remote, so std/assert
// is not available.

/** Throws unless `cond` is truthy. */
export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

function show(v: unknown): string {
  return Deno.inspect(v, { depth: 6, colors: false, iterableLimit: 20 });
}

/** Structural equality: primitives, arrays, typed arrays, Dates, plain objects. */
export function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (
    typeof a !== "object" || typeof b !== "object" || a === null || b === null
  ) return false;
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date &&
      a.getTime() === b.getTime();
  }
  if (
    ArrayBuffer.isView(a) || ArrayBuffer.isView(b) || Array.isArray(a) ||
    Array.isArray(b)
  ) {
    const x = a as ArrayLike<unknown>;
    const y = b as ArrayLike<unknown>;
    if (Array.isArray(a) !== Array.isArray(b) || x.length !== y.length) {
      return false;
    }
    for (let i = 0; i < x.length; i++) if (!equal(x[i], y[i])) return false;
    return true;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    if (
      !equal(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
      )
    ) return false;
  }
  return true;
}

/** Throws unless `actual` and `expected` are structurally equal. */
export function assertEquals(
  actual: unknown,
  expected: unknown,
  msg?: string,
): void {
  if (!equal(actual, expected)) {
    throw new Error(
      `${msg ? msg + ": " : ""}values differ\nactual:   ${
        show(actual)
      }\nexpected: ${show(expected)}`,
    );
  }
}

/** Throws unless `fn` throws, and returns what it threw. */
export function assertThrows(
  fn: () => unknown,
  msg = "expected a throw",
): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error(msg);
}

/** Rejects unless `p` rejects, and resolves to the rejection reason. */
export async function assertRejects(
  p: Promise<unknown> | (() => Promise<unknown>),
  msg = "expected a rejection",
): Promise<unknown> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    return e;
  }
  throw new Error(msg);
}
