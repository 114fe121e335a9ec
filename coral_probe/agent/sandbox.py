"""The script sandbox: the only place a script's command line is built.

Walls, outermost first:
- Deno's flags: the agent's socket (read, write, connect) and the CORAL_*
  variables the SDK reads; no other files, network, subprocesses, FFI,
  remote or npm modules.
- The import graph, checked on the agent's private copy of the script
  (`script_copy`), which is what then runs.
- The OS (`confine`): a uid of its own with no capabilities, no_new_privs,
  Landlock (reads only its copy, the SDK and Deno's own files; no TCP), and
  a cgroup (`cgroups`) bounding memory and processes.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import CoralError, EnvironmentProblem
from .confine import ConfineSpec
from .script_copy import MAX_ROUNDS, ScriptCopy, copy_missing, start_copy

SDK_DIR = Path(__file__).resolve().parent.parent.parent / "sdk" / "typescript"
SDK_ENV = ("CORAL_SOCKET", "CORAL_TOKEN")
DEFAULT_HEAP_MB = 256
# Besides the V8 heap: Deno itself, ArrayBuffers, Workers' heaps.
DEFAULT_MEMORY_MB = 512
DEFAULT_MAX_PIDS = 128
# Scripts get uids of their own from a range no distribution allocates, and
# share one gid, the group of the agent's socket directory.
SCRIPT_GID = 0x60000000
SCRIPT_UID_SPAN = 1 << 24
# Deno reads these at start-up; all else of the host stays unreadable.
# /proc/self is opened by the launcher, whose pid Deno keeps across exec:
# its own /proc/PID (Deno's stack probe reads maps), no other process's.
_SYSTEM_EXEC = ("/usr/lib", "/lib", "/lib64", "/usr/lib64")
_SYSTEM_READ = ("/etc/ld.so.cache", "/dev/null", "/dev/urandom", "/proc/meminfo", "/proc/self",
                "/sys/devices/system/cpu/online")
COPY_MODE = 0o640
# A run's Deno cache lives here when it is a tmpfs: what a script writes
# there is memory its cgroup pays for, and it goes when the run ends.
SCRATCH_ROOT = Path("/dev/shm")
# Scripts are started from this one thread, which lives as long as the agent:
# the kernel kills a script when the thread that started it ends (its
# parent-death signal), and the threads that ask for a start may end first.
_LAUNCHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coral-launch")


def deno_binary() -> str:
    try:
        from deno import find_deno_bin
        return find_deno_bin()
    except (ImportError, FileNotFoundError):
        raise EnvironmentProblem("Deno is not installed (PyPI package `deno`)") from None


def sdk_dir() -> Path:
    override = os.environ.get("CORAL_SDK_DIR")
    return Path(override) if override else SDK_DIR


def new_script_uid() -> int:
    return SCRIPT_GID + 1 + secrets.randbelow(SCRIPT_UID_SPAN)


# The checks (`deno info`, `deno check`) run as one uid of their own, never a
# script's (those are above it), so that their Deno cache carries over from
# one check to the next: with a writable cache `deno check` of a new script
# takes ~1 s here, with a read-only one 2.5-4 s (Deno's SQLite caches fall
# back to memory). What a check writes there is Deno's own bookkeeping, keyed
# by the hashes of the sources checked.
CHECK_UID = SCRIPT_GID


@dataclass(frozen=True)
class Sandbox:
    socket_path: str
    runtime_dir: Path  # the agent's: socket, Deno's read-only cache, script copies
    heap_mb: int = DEFAULT_HEAP_MB
    memory_mb: int = DEFAULT_MEMORY_MB
    max_pids: int = DEFAULT_MAX_PIDS

    @property
    def import_map(self) -> Path:
        return sdk_dir() / "import_map.json"

    @property
    def deno_dir(self) -> Path:
        """Deno's cache for the import check: empty and read-only."""
        return self.runtime_dir / "deno"

    def scratch_dir(self, copy: ScriptCopy) -> Path | None:
        """A run's own Deno cache (emit cache, Cache API, localStorage): no
        storage outlives the run, and none is free. Without a tmpfs the run
        gets the read-only cache instead: slower to start (Deno retries its
        cache writes), never unbounded."""
        return SCRATCH_ROOT / f"{self.runtime_dir.name}-{copy.directory.name}" if _is_tmpfs(SCRATCH_ROOT) else None

    @property
    def check_cache(self) -> Path:
        return self.runtime_dir / "check-cache"

    def prepare_runtime(self) -> None:
        for path in (self.runtime_dir, self.deno_dir):
            path.mkdir(mode=0o750, exist_ok=True)
            os.chown(path, 0, SCRIPT_GID)
            path.chmod(0o750)
        self.check_cache.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.check_cache, CHECK_UID, SCRIPT_GID)

    def share_socket(self) -> None:
        """Scripts connect as their own uid: the socket is the group's."""
        os.chown(self.socket_path, 0, SCRIPT_GID)
        os.chmod(self.socket_path, 0o660)

    def common_flags(self) -> list[str]:
        return ["--no-remote", "--no-npm", "--no-config", "--no-lock", f"--import-map={self.import_map}"]

    def prepare(self, script: Path, name: str) -> tuple[ScriptCopy, bytes]:
        """Copies the script and what it imports; checks the copy's graph."""
        copy, code = start_copy(script, self.runtime_dir / name, COPY_MODE, SCRIPT_GID)
        try:
            copied: dict[str, int] = {}
            for _ in range(MAX_ROUNDS):
                missing = self._check_graph(copy)
                if not missing:
                    return copy, code
                copy_missing(copy, missing, copied, COPY_MODE, SCRIPT_GID)
            raise CoralError(f"script refused: its imports nest deeper than {MAX_ROUNDS} levels")
        except BaseException:
            self.discard(copy)
            raise

    def discard(self, copy: ScriptCopy) -> None:
        shutil.rmtree(copy.directory, ignore_errors=True)
        scratch = self.scratch_dir(copy)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    def confined(self, copy: ScriptCopy, uid: int, cgroup_procs: list[str], deno_args: list[str],
                 scratch: Path | None = None) -> list[str]:
        deno = deno_binary()
        spec = ConfineSpec(uid=uid, gid=SCRIPT_GID, read_exec=[deno, *_SYSTEM_EXEC],
                           read=[str(copy.directory), str(sdk_dir()), str(self.deno_dir), *_SYSTEM_READ],
                           read_write=[str(scratch)] if scratch else [], cgroup_procs=cgroup_procs,
                           parent_pid=os.getpid())
        return [sys.executable, "-I", "-m", "coral_probe.agent.confine", spec.to_arg(), "--", deno, *deno_args]

    def command(self, copy: ScriptCopy, uid: int, cgroup_procs: list[str]) -> list[str]:
        """The run's command line; makes its scratch cache, owned by `uid`."""
        scratch = self.scratch_dir(copy)
        if scratch is not None:
            scratch.mkdir(mode=0o700)
            os.chown(scratch, uid, SCRIPT_GID)
        sock = self.socket_path
        return self.confined(copy, uid, cgroup_procs, [
            "run", "--no-prompt", "--cached-only", *self.common_flags(),
            f"--allow-read={sock}", f"--allow-write={sock}", f"--allow-net=unix:{sock}",
            f"--allow-env={','.join(SDK_ENV)}", f"--v8-flags=--max-old-space-size={self.heap_mb}",
            copy.entry_url], scratch)

    @staticmethod
    def launch(command: list[str], **popen_args) -> subprocess.Popen:
        """Starts a run's command (see `command`) from the launcher thread."""
        return _LAUNCHER.submit(subprocess.Popen, command, **popen_args).result()

    def environment(self, token: str, copy: ScriptCopy | None = None) -> dict[str, str]:
        # Only CORAL_* reach the script. DENO_DIR is Deno's own cache location;
        # the script cannot read it (no --allow-env for it).
        scratch = self.scratch_dir(copy) if copy is not None else None
        return {"CORAL_SOCKET": self.socket_path, "CORAL_TOKEN": token, "DENO_DIR": str(scratch or self.deno_dir),
                "NO_COLOR": "1", "TZ": "UTC"}

    def type_check(self, copy: ScriptCopy) -> None:
        """`deno check` on a prepared copy (its import graph already checked),
        confined like the graph check; raises with the checker's first error."""
        result = self._run_check(copy, ["check", "--quiet", *self.common_flags(), copy.entry_url], timeout_s=120)
        if result.returncode != 0:
            raise CoralError(f"script refused: {_first_check_error(result.stderr, copy)}")

    def _run_check(self, copy: ScriptCopy, deno_args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
        """A Deno check of the copy, confined as CHECK_UID with its cache. A
        session of its own: a Ctrl-C in the terminal is coral's to handle (a
        graceful stop), not a failed check that reads as a refused script."""
        command = self.confined(copy, CHECK_UID, [], deno_args, scratch=self.check_cache)
        env = {**self.environment(""), "DENO_DIR": str(self.check_cache)}
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s,
                              cwd=copy.directory, start_new_session=True)

    def _check_graph(self, copy: ScriptCopy) -> list[str]:
        """Refuses, before it runs, a copy importing anything but @coral/sdk
        and files of its own directory (Deno reads static imports without
        asking for --allow-read, so the permission flags alone do not stop
        them). Returns the local modules still to copy. The check runs
        confined too: parsing hostile code is the script's risk, not root's."""
        result = self._run_check(copy, ["info", "--json", *self.common_flags(), copy.entry_url], timeout_s=60)
        if result.returncode != 0:
            raise _refusal(_first_error(result.stderr))
        graph = json.loads(result.stdout)
        sdk = sdk_dir().resolve()
        missing = []
        for module in graph.get("modules", []):
            specifier = module.get("specifier", "")
            error = module.get("error")
            if not specifier.startswith("file://"):
                raise _refusal(f"it imports a remote or npm module ({specifier})")
            if error and error.startswith("Module not found"):
                missing.append(specifier)
                continue
            if error:
                raise _refusal(error)
            path = Path(unquote(urlparse(specifier).path))
            if not (path.is_relative_to(copy.directory) or path.is_relative_to(sdk)):
                raise CoralError(f"script refused: it imports {path}, outside its own directory; scripts may "
                                 "import only @coral/sdk and files of their own directory")
        return missing


def _is_tmpfs(path: Path) -> bool:
    try:
        with open("/proc/self/mounts") as mounts:
            return any(f.split()[1:3] == [str(path), "tmpfs"] for f in mounts)
    except OSError:
        return False


def _refusal(detail: str) -> CoralError:
    if detail.startswith("it imports"):
        pass
    elif "import access" in detail or "--allow-import" in detail or "npm" in detail or "jsr:" in detail:
        detail = f"it imports a remote or npm module ({detail.split(',')[0]})"
    return CoralError(f"script refused: {detail}; scripts may import only @coral/sdk and files of their "
                      "own directory")


def _first_check_error(stderr: str, copy: ScriptCopy) -> str:
    """The type checker's first diagnostic, with where it is in the script."""
    import re

    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", stderr).splitlines()]
    for i, line in enumerate(lines):
        if re.match(r"TS\d+ \[ERROR\]", line):
            where = next((w[3:] for w in lines[i + 1:i + 6] if w.startswith("at file://")), "")
            where = where.replace(copy.directory.as_uri() + "/", "")
            return f"{line} ({where})" if where else line
    return _first_error(stderr)


def _first_error(stderr: str) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip() if lines else "deno could not load it"
