"""`coral doctor`: what this machine can do, one line per capability."""

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .attach import effective_capabilities, kernel_has_kprobes
from .errors import CoralError
from .tracefs import TRACEFS


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str = ""


def _privileges() -> Check:
    caps = effective_capabilities()
    names = [n for bit, n in ((21, "CAP_SYS_ADMIN"), (38, "CAP_PERFMON"), (39, "CAP_BPF")) if caps >> bit & 1]
    if os.geteuid() == 0 or {"CAP_BPF", "CAP_PERFMON"} <= set(names) or "CAP_SYS_ADMIN" in names:
        return Check("privileges", "ok", f"uid {os.geteuid()}, {', '.join(names) or 'no caps'}")
    return Check("privileges", "fail", f"uid {os.geteuid()} without CAP_BPF/CAP_PERFMON", "run as root (sudo)")


def _btf() -> Check:
    if os.path.exists("/sys/kernel/btf/vmlinux"):
        return Check("BTF", "ok", "/sys/kernel/btf/vmlinux")
    return Check("BTF", "warn", "no /sys/kernel/btf/vmlinux (fentry unavailable)", "a kernel built with CONFIG_DEBUG_INFO_BTF")


def _pmu(name: str) -> str | None:
    try:
        with open(f"/sys/bus/event_source/devices/{name}/type") as f:
            return f.read().strip()
    except OSError:
        return None


def _uprobes() -> Check:
    pmu = _pmu("uprobe")
    if pmu:
        return Check("uprobes", "ok", f"uprobe PMU type {pmu} (uretprobes too)")
    if os.path.exists(f"{TRACEFS}/uprobe_events"):
        return Check("uprobes", "ok", "via tracefs uprobe_events")
    return Check("uprobes", "fail", "no uprobe PMU and no uprobe_events", "a kernel with CONFIG_UPROBE_EVENTS")


def _function_probes() -> Check:
    from . import uprobe_links

    if uprobe_links.mode() == uprobe_links.MULTI:
        return Check("function probes", "ok", "uprobe_multi links: one program and one link per file for "
                     f"all functions, up to {uprobe_links.MAX_UPROBE_MULTI_CNT:,} per link")
    if uprobe_links.kernel_has_uprobe_multi():
        return Check("function probes", "info", f"per-probe uprobes, forced by {uprobe_links.MODE_ENV}")
    return Check("function probes", "warn", "per-probe uprobes (no uprobe_multi links before Linux 6.6): "
                 "~0.1 s to detach each, at most 1000 probes", "a kernel >= 6.6")


def _kprobes() -> Check:
    if kernel_has_kprobes():
        return Check("kprobes", "ok", f"kprobe PMU type {_pmu('kprobe') or '?'}")
    return Check("kprobes", "warn", "CONFIG_KPROBES is not set: --kernel falls back to fentry, else fails",
                 "use --tracepoint, or a kernel with kprobes")


def _tracefs_and_tracepoints() -> list[Check]:
    mounted = os.path.exists(f"{TRACEFS}/events")
    checks = [Check("tracefs", "ok" if mounted else "warn",
                    f"mounted at {TRACEFS}" if mounted else f"not mounted at {TRACEFS}",
                    "" if mounted else f"coral mounts it when probing, or: mount -t tracefs nodev {TRACEFS}")]
    if mounted:
        syscalls = os.path.isdir(f"{TRACEFS}/events/syscalls")
        checks.append(Check("tracepoints", "ok", "available" + (", incl. syscalls:*" if syscalls else "")))
    return checks


def _bcc() -> Check:
    try:
        import bcc  # noqa: F401
    except ImportError as e:
        return Check("bcc", "fail", f"not importable: {e}", "apt-get install python3-bpfcc; scripts/setup.sh links it")
    version = "?"
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-bpfcc"], capture_output=True, text=True)
        version = out.stdout.strip() or version
    except OSError:
        pass
    return Check("bcc", "ok", f"python3-bpfcc {version}")


def _headers() -> Check:
    release = os.uname().release
    build = f"/lib/modules/{release}/build"
    if not os.path.exists(f"{build}/include"):
        return Check("kernel headers", "fail", f"none for {release}",
                     "apt-get install linux-headers-$(uname -r), or scripts/setup.sh links a fallback")
    real = os.path.realpath(build)
    match = re.search(r"linux-headers-(\d+\.\d+)", real)
    running = ".".join(release.split(".")[:2])
    if match and match.group(1) != running:
        return Check("kernel headers", "warn", f"fallback: {os.path.basename(real)} for kernel {release}",
                     "fine for uprobes; install headers matching the kernel for kernel-struct access")
    return Check("kernel headers", "ok", real)


def _deno() -> Check:
    try:
        from deno import find_deno_bin
        path = find_deno_bin()
    except (ImportError, FileNotFoundError):
        path = shutil.which("deno")
    if not path:
        return Check("deno", "fail", "not found", "pip install deno (scripts/setup.sh does)")
    out = subprocess.run([path, "--version"], capture_output=True, text=True)
    return Check("deno", "ok", f"{out.stdout.splitlines()[0] if out.stdout else '?'} ({path})")


def _landlock() -> Check:
    from . import _native

    abi = _native.landlock_abi()
    if abi >= 4:
        return Check("landlock", "ok", f"ABI {abi}: scripts read only their own files, no TCP")
    if abi >= 1:
        return Check("landlock", "warn", f"ABI {abi}: file rules only, scripts' TCP is not refused by the kernel",
                     "a kernel >= 6.7 for network rules")
    return Check("landlock", "warn", "off: scripts are confined by Deno, their uid and their cgroup only",
                 "a kernel with CONFIG_SECURITY_LANDLOCK and landlock in lsm=")


def _script_cgroups() -> Check:
    from .agent.cgroups import mode

    how = mode()
    if how == "v2":
        return Check("script cgroups", "ok", "cgroup v2: memory.max, pids.max per script")
    if how == "v1":
        return Check("script cgroups", "ok", "cgroup v1 memory and pids hierarchies (v2 lacks those controllers)")
    return Check("script cgroups", "fail", "no memory and pids controllers: scripts cannot run bounded",
                 "mount cgroup2 at /sys/fs/cgroup with the memory and pids controllers")


def _script_files() -> Check:
    """Scripts run as a uid of their own: Deno and the SDK must be readable
    by others, on a path every directory of which they may pass."""
    from .agent.sandbox import deno_binary, sdk_dir

    try:
        paths = [deno_binary(), str(sdk_dir() / "mod.ts")]
    except CoralError as e:
        return Check("script files", "fail", str(e))
    for path in paths:
        for part in [path, *map(str, Path(path).parents)]:
            if not os.stat(part).st_mode & 0o005:
                return Check("script files", "fail", f"{part} is not readable by scripts' uids",
                             f"chmod o+rx {part}, or install coral outside a private home")
    return Check("script files", "ok", "Deno and the SDK are readable by scripts' uids")


def run_checks() -> list[Check]:
    checks = [Check("kernel", "info", f"{platform.release()} {platform.machine()}"),
              _privileges(), _btf(), _uprobes(), _function_probes(), _kprobes(), *_tracefs_and_tracepoints(), _bcc(), _headers(), _deno(),
              _landlock(), _script_cgroups(), _script_files()]
    return checks


def probe_blocker() -> str | None:
    """Why this process cannot attach uprobes, or None when it can."""
    if os.geteuid() != 0 and _privileges().status == "fail":
        return "not root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc not importable"
    if not os.path.exists("/sys/bus/event_source/devices/uprobe"):
        return "kernel without uprobes"
    return None
