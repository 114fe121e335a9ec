#!/usr/bin/env bash
# The whole test suite: Rust unit tests (incl. the event layout pin), then
# pytest on real probes. CORAL_REQUIRE_BPF=1 turns eBPF skips into failures.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$ROOT"
echo "== cargo test"
PYO3_PYTHON="$ROOT/.venv/bin/python" cargo test --release -q
echo "== pytest"
"$ROOT/.venv/bin/python" -m pytest tests "$@"
