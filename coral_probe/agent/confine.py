"""The launcher a script's Deno starts from: `python -I -m coral_probe.agent.confine
SPEC -- DENO ARGS...`. In this fresh, single-threaded process it joins the
script's cgroups, caps its resources, drops to the script's uid with no
capabilities under Landlock, then becomes Deno, which the kernel kills when
the agent dies (even by SIGKILL): no script outlives the agent that ran it.
A launcher process rather than a `preexec_fn`: the agent is multi-threaded,
and forking one safely is what `subprocess` cannot promise for arbitrary
Python code."""

import ctypes
import json
import os
import resource
import signal
import sys
from dataclasses import asdict, dataclass, field


@dataclass
class ConfineSpec:
    uid: int
    gid: int
    read_exec: list[str]
    read: list[str]
    read_write: list[str] = field(default_factory=list)
    cgroup_procs: list[str] = field(default_factory=list)
    max_open_files: int = 1024
    # The agent's pid. The kernel's parent-death signal follows the thread
    # that started the launcher: the agent starts scripts from one that lasts.
    parent_pid: int | None = None

    def to_arg(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


PR_SET_PDEATHSIG = 1


def _apply(spec: ConfineSpec) -> str:
    from .. import _native

    for procs in spec.cgroup_procs:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (spec.max_open_files, spec.max_open_files))
    how = _native.confine_self(spec.uid, spec.gid, spec.read_exec, spec.read, spec.read_write)
    if spec.parent_pid is not None:
        _die_with(spec.parent_pid)
    return how


def _die_with(parent_pid: int) -> None:
    """SIGKILL when the parent dies. Set after the uid change, which clears it;
    kept across the exec of Deno. A parent already gone is seen here."""
    libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: no file to read
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        raise RuntimeError("the agent that started it has ended")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -I -m coral_probe.agent.confine SPEC -- PROGRAM ARGS...", file=sys.stderr)
        return 2
    spec = ConfineSpec(**json.loads(argv[0]))
    try:
        _apply(spec)
    except Exception as e:  # noqa: BLE001 - the agent reads this one line as the reason
        print(f"coral: cannot confine the script: {e}", file=sys.stderr)
        return 126
    os.execv(argv[2], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
