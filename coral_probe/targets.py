"""Where probes go: a binary or library path, a running process, or a
command coral starts itself (attach first, then let it run)."""

import os
import shutil
import subprocess
from dataclasses import dataclass

from .errors import CoralError, NotFound


@dataclass(frozen=True)
class Target:
    path: str            # file to read symbols from and attach to
    pid: int | None      # process filter (kernel-side), None for every process
    display: str         # what the user named


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _library_in_ldconfig(name: str) -> str | None:
    # bcc's resolver (the ldconfig cache), so `libc`/`c`/`pthread` mean what
    # they mean to bcc tools. Imported lazily: bcc is heavy and optional here.
    from bcc import BPF
    stem = name[3:] if name.startswith("lib") else name
    stem = stem.split(".so")[0]
    found = BPF.find_library(stem)
    return found.decode() if found else None


def _library_in_process(name: str, pid: int) -> str | None:
    stem = name[3:] if name.startswith("lib") else name
    stem = stem.split(".so")[0]
    try:
        with open(f"/proc/{pid}/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6}
    except OSError:
        return None
    for path in sorted(paths):
        base = os.path.basename(path)
        if base == name or base.startswith(f"lib{stem}.so") or base.startswith(f"lib{stem}-"):
            return path
    return None


def check_pid(pid: int) -> None:
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        raise NotFound(f"no process with pid {pid}")


def resolve_binary(spec: str, pid: int | None = None) -> Target:
    """A path, a command on $PATH, or a library short name (`libc`, `pthread`)."""
    if pid is not None:
        check_pid(pid)
    candidates = []
    if "/" in spec or os.path.exists(spec):
        candidates.append(spec)
    else:
        if pid is not None:
            in_process = _library_in_process(spec, pid)
            if in_process:
                # Through the process's root: correct inside containers too.
                candidates.append(f"/proc/{pid}/root{in_process}")
        which = shutil.which(spec)
        if which:
            candidates.append(which)
        lib = _library_in_ldconfig(spec)
        if lib:
            candidates.append(lib)
    for path in candidates:
        if os.path.isfile(path):
            if not _is_elf(path):
                raise CoralError(f"{spec}: not an ELF binary or library")
            return Target(path=os.path.realpath(path) if not path.startswith("/proc/") else path,
                          pid=pid, display=spec)
    raise NotFound(f"binary not found: {spec}")


def resolve_pid(pid: int) -> Target:
    check_pid(pid)
    exe = f"/proc/{pid}/exe"
    try:
        display = os.readlink(exe)
    except OSError as e:
        raise CoralError(f"cannot read the executable of pid {pid}: {e.strerror}") from None
    # /proc/PID/exe is the process's own inode, whatever mount namespace it
    # lives in, so it is both the symbol source and the attach path.
    return Target(path=exe, pid=pid, display=display)


class LaunchedCommand:
    """A command forked now but held before exec until `release()`, so the
    probes are in place before its first instruction runs."""

    def __init__(self, argv: list[str], *, stdout=None):
        if not argv:
            raise CoralError("no command given after --")
        program = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
        if not program or not os.path.isfile(program):
            raise CoralError(f"command not found: {argv[0]}")
        if not os.access(program, os.X_OK):
            raise CoralError(f"not executable: {argv[0]}")
        self.program = os.path.realpath(program)
        read_end, self._write_end = os.pipe()
        # The child waits in sh for one byte, then execs the command in place
        # (same pid). A pre-exec hook cannot do this: Popen waits for the exec.
        hold = f'read _ <&{read_end}; exec {read_end}<&-; exec "$0" "$@"'
        self.process = subprocess.Popen(["/bin/sh", "-c", hold, program, *argv[1:]],
                                        pass_fds=(read_end,), stdout=stdout)
        os.close(read_end)

    @property
    def pid(self) -> int:
        return self.process.pid

    def target(self) -> Target:
        return Target(path=self.program, pid=self.pid, display=self.program)

    def release(self) -> None:
        if self._write_end is not None:
            os.write(self._write_end, b"g")
            os.close(self._write_end)
            self._write_end = None

    def kill(self) -> None:
        self.release()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
