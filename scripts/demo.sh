#!/usr/bin/env bash
# The demo: real uprobes on the bundled payments service. Sets up first
# (idempotent), then probes every ProcessPayment call, then shows the slow
# ones straight from DuckDB.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
export CORAL_HOME="${CORAL_HOME:-$ROOT/.demo-home}"
CORAL="$ROOT/.venv/bin/coral"
PAYMENTS="$ROOT/examples/payments/payments"
rm -f "$CORAL_HOME/agent.duckdb"

echo
echo "== 1. every call of ProcessPayment: 60 payments, every 10th slow (600 ms)"
"$CORAL" probe attach ProcessPayment --args 2 -- "$PAYMENTS" --calls 60 --slow-every 10

echo
echo "== 2. only calls slower than 500 ms, filtered in the kernel, as JSON lines"
"$CORAL" probe attach ProcessPayment --args 2 --min-duration 500ms -o jsonl -- "$PAYMENTS" --calls 30 --slow-every 10

echo
echo "== 3. a TypeScript filter in the Deno sandbox: every call reaches it, it emits the slow ones"
cat "$ROOT/examples/scripts/slow_payments.ts"
"$CORAL" run "$ROOT/examples/scripts/slow_payments.ts" -- "$PAYMENTS" --calls 40 --slow-every 10

echo
echo "== 4. the same script joined to a probe session (events stored and filtered at once)"
"$CORAL" probe attach ProcessPayment --args 2 --script "$ROOT/examples/scripts/slow_payments.ts" \
  -- "$PAYMENTS" --calls 20 --slow-every 10

echo
echo "== 5. what DuckDB holds"
"$CORAL" query sql "SELECT function_name, count(*) AS calls, count(*) FILTER (duration_ns > 500e6) AS slow,
  count(*) FILTER (return_value = 1) AS declined, round(median(duration_ns) / 1e6, 1) AS p50_ms,
  round(max(duration_ns) / 1e6, 1) AS max_ms FROM probe_events GROUP BY ALL"
"$CORAL" query sql "SELECT name, count(*) AS emitted, min(data) AS example FROM emitted_events GROUP BY ALL ORDER BY name"
