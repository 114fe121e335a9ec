#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine, run as root: distro packages,
# kernel headers for bcc, the Python venv with bcc made importable, the Rust
# core built into it, Deno from PyPI. Safe to run again: every step checks first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CORAL_VENV:-$ROOT/.venv}"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [[ $EUID -ne 0 ]]; then
  echo "setup: run as root (eBPF needs CAP_BPF/CAP_PERFMON, apt needs root)" >&2
  exit 1
fi

APT_PACKAGES=(python3-bpfcc bpfcc-tools bpftrace bpftool linux-headers-amd64 gcc g++ make
              libelf-dev pkg-config protobuf-compiler systemtap-sdt-dev openssl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v go >/dev/null 2>&1; then missing+=(golang-go); fi
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# bcc compiles BPF C at run time against kernel headers. Only when the running
# kernel has none (this VM's kernel ships no headers package) link Debian's
# newest linux-headers tree in; `coral doctor` reports that it is a fallback.
KDIR="/lib/modules/$(uname -r)"
if [[ ! -e "$KDIR/build/include" ]]; then
  amd64="$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -1)"
  common="${amd64%-amd64}-common"
  if [[ -n "$amd64" && -d "$common" ]]; then
    log "no headers for kernel $(uname -r): linking fallback $(basename "$amd64")"
    mkdir -p "$KDIR"
    ln -sfn "$amd64" "$KDIR/build"
    ln -sfn "$common" "$KDIR/source"
  else
    echo "setup: no kernel headers found under /usr/src" >&2
    exit 1
  fi
fi

# Minimal VMs boot without tracefs; bcc needs it (coral also mounts it itself).
if [[ ! -d /sys/kernel/tracing/events ]]; then
  mount -t tracefs nodev /sys/kernel/tracing || true
fi

PY="${CORAL_PYTHON:-python3}"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
# bcc is Debian's python3-bpfcc (not on PyPI): link just the package into the
# venv rather than all of dist-packages, so nothing else of Debian's leaks in.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ln -sfn /usr/lib/python3/dist-packages/bcc "$SITE/bcc"

"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -r "$ROOT/requirements-dev.txt"

if ! command -v cargo >/dev/null 2>&1 && [[ ! -x "$HOME/.cargo/bin/cargo" ]]; then
  log "installing Rust toolchain from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q cargo rustc
fi
export PATH="$HOME/.cargo/bin:$PATH"

log "building the Rust core (maturin develop --release)"
# Its pip step is chatty ("Requirement already satisfied"): keep that in a log.
if ! (cd "$ROOT" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" \
      "$VENV/bin/maturin" develop --release -q > "$VENV/maturin.log" 2>&1); then
  cat "$VENV/maturin.log" >&2
  exit 1
fi

# A wheel install precompiles; the editable one does not, and with
# PYTHONDONTWRITEBYTECODE set (as on these machines) nothing ever would:
# every `coral` start would compile its modules again (~40 ms of start-up).
"$VENV/bin/python" -m compileall -q "$ROOT/coral_probe"

log "building example and test targets"
make -s -C "$ROOT/examples/payments"
log "ready: $("$VENV/bin/coral" --version)"
