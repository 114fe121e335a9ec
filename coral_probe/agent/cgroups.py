"""A cgroup per script: memory and process limits the kernel enforces,
whatever the script allocates (ArrayBuffers and Workers live outside the V8
heap cap). cgroup v2 where its memory and pids controllers are available;
on hybrid hosts, where they are bound to v1 hierarchies, the v1 ones."""

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvironmentProblem

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _v2_controllers() -> set[str]:
    try:
        return set((CGROUP_ROOT / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def _own_v1_path(controller: str) -> str:
    """This process's cgroup in a v1 hierarchy: scripts nest under it, so
    whatever limits the agent lives under also hold for its scripts."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "/"


def mode() -> str:
    """"v2", "v1" or "none": how script limits are enforced here."""
    if {"memory", "pids"} <= _v2_controllers():
        return "v2"
    if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists() and (CGROUP_ROOT / "pids").is_dir():
        return "v1"
    return "none"


@dataclass
class ScriptCgroup:
    mode: str
    dirs: list[Path]  # v2: one; v1: memory, pids
    memory_bytes: int
    max_pids: int

    @classmethod
    def create(cls, name: str, *, memory_bytes: int, max_pids: int) -> "ScriptCgroup":
        how = mode()
        if how == "v2":
            parent = CGROUP_ROOT / "coral"
            parent.mkdir(exist_ok=True)
            # Controllers must be enabled top-down before a child can use them.
            for level in (CGROUP_ROOT, parent):
                (level / "cgroup.subtree_control").write_text("+memory +pids")
            [group] = _paths(how, name)
            group.mkdir()
            (group / "memory.max").write_text(str(memory_bytes))
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
            (group / "memory.oom.group").write_text("1")
            (group / "pids.max").write_text(str(max_pids))
            return cls(how, [group], memory_bytes, max_pids)
        if how == "v1":
            dirs = _paths(how, name)
            for group in dirs:
                group.mkdir(parents=True)
            memory, pids = dirs
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            if (memory / "memory.memsw.limit_in_bytes").exists():
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            (pids / "pids.max").write_text(str(max_pids))
            return cls(how, dirs, memory_bytes, max_pids)
        raise EnvironmentProblem("no cgroup memory and pids controllers: scripts cannot be bounded")

    @classmethod
    def left(cls, name: str) -> "ScriptCgroup | None":
        """The group `create(name)` made, if it is still there: left by an
        agent that was killed, to be emptied and removed by the next one."""
        how = mode()
        dirs = [d for d in _paths(how, name) if d.is_dir()] if how != "none" else []
        return cls(how, dirs, 0, 0) if dirs else None

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def limit_hit(self) -> str | None:
        """Why the kernel stopped the script, if a limit did."""
        if self.mode == "v2":
            memory = _keyed(self.dirs[0] / "memory.events")
            pids = _keyed(self.dirs[0] / "pids.events")
        else:
            memory = _keyed(self.dirs[0] / "memory.oom_control")
            pids = _keyed(self.dirs[1] / "pids.events")
        if memory.get("oom_kill", 0):
            return f"memory limit reached ({self.memory_bytes >> 20} MiB): killed by the kernel"
        if pids.get("max", 0):
            return f"process limit reached ({self.max_pids} threads and processes)"
        return None

    def kill(self) -> None:
        """SIGKILL everything left in the group (a script's own children)."""
        for _ in range(50):
            pids = _pids(self.dirs[0] / "cgroup.procs")
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        """Kills what is left and removes the group, nested groups first (a
        test's group holds the agent's, which holds its scripts')."""
        self.kill()
        for group in self.dirs:
            nested = sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
            for path in [*nested, group]:
                for _ in range(50):  # rmdir is refused until the last task is reaped
                    try:
                        path.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)


def _paths(how: str, name: str) -> list[Path]:
    if how == "v2":
        return [CGROUP_ROOT / "coral" / name]
    return [CGROUP_ROOT / c / _own_v1_path(c).lstrip("/") / "coral" / name for c in ("memory", "pids")]


def _keyed(path: Path) -> dict[str, int]:
    try:
        pairs = (line.split() for line in path.read_text().splitlines())
        return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}
    except OSError:
        return {}


def _pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []
