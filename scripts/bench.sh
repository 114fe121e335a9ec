#!/usr/bin/env bash
# Benchmarks with their peer ratios (benches/, pytest-benchmark).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
# benches/test_redis_overhead.py probes Debian's redis-server (it starts its
# own on a free port; RUNLEVEL=1 keeps the package from starting the service).
missing=()
for p in redis-server redis-tools; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -q
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
cd "$ROOT"
"$ROOT/.venv/bin/python" -m pytest benches -s -q -p no:randomly --benchmark-columns=min,mean,max,rounds "$@"
