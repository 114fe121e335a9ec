#!/usr/bin/env bash
# Benchmarks with their peer ratios (benches/, pytest-benchmark).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
"$ROOT/.venv/bin/python" -m pytest benches -s -q -p no:randomly --benchmark-columns=min,mean,max,rounds "$@"
