"""Where probes go: a binary or library path, a running process, or a
command coral starts itself (attach first, then let it run)."""

import os
import shutil
import subprocess
from dataclasses import dataclass

from .errors import CoralError, NotFound
from .libraries import linked_files
from .terminal import safe_text


@dataclass(frozen=True)
class Target:
    path: str            # file to read symbols from and attach to
    pid: int | None      # process filter (kernel-side), None for every process
    display: str         # what the user named
    # Searched after `path` for a function named without --binary: what the
    # program loads. Empty when the user pinned a file (--binary).
    libraries: tuple[str, ...] = ()


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
    found = BPF.find_library(stem.encode())
    return found.decode() if found else None


def _is_short_name_of(name: str, path: str) -> bool:
    """`libz`, `z`, `libz.so.1` all name `.../libz.so.1.2.13` (and `libc` an old `libc-2.31.so`)."""
    stem = name[3:] if name.startswith("lib") else name
    stem = stem.split(".so")[0]
    base = os.path.basename(path)
    return base == name or base.startswith(f"lib{stem}.so") or (base.startswith(f"lib{stem}-") and ".so" in base)


def loaded_files(pid: int | None = None, *, program: str | None = None) -> list[str]:
    """The executable and libraries of a target, as paths coral can open.

    `program`: a command coral is about to start (its pid, if any, is a shell
    held before its exec, whose maps say nothing about the command): what ld.so
    will load for it with coral's environment, which the command inherits.
    `pid`: what the running process maps with code, read through its own root
    so a container's files are its own, not the host's."""
    if program is not None:
        return [os.path.realpath(program), *linked_files(program, env=os.environ)]
    if pid is None:
        raise ValueError("loaded_files needs a pid or a program")
    found: dict[str, None] = {}
    try:
        with open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)
                # Executable mappings only: data files (locale-archive, caches) are not code.
                if len(fields) == 6 and "x" in fields[1] and fields[5].startswith("/"):
                    found[f"/proc/{pid}/root{fields[5].rstrip()}"] = None
    except OSError:
        pass  # gone: its probes fail on their own
    return list(found)


def display_path(path: str, pid: int | None) -> str:
    """`path` as the process itself names it: coral reads a process's files
    through /proc/PID/root, which the user never typed."""
    return path.removeprefix(f"/proc/{pid}/root") if pid is not None else path


def file_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _library_loaded(spec: str, pid: int | None, program: str | None) -> str | None:
    by_file: dict[tuple[int, int], str] = {}
    for path in loaded_files(pid, program=program):
        if _is_short_name_of(spec, path) and (identity := file_identity(path)) is not None:
            by_file.setdefault(identity, path)
    if len(by_file) > 1:
        if program is not None:
            where, shown = f"the command {os.path.basename(program)}", sorted(by_file.values())
        else:
            where, shown = f"pid {pid}", sorted(display_path(p, pid) for p in by_file.values())
        raise CoralError(f"{spec} names {len(shown)} different files loaded by {where}: "
                         f"{', '.join(shown)}; give the path of one")
    return next(iter(by_file.values()), None)


def check_pid(pid: int) -> None:
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        raise NotFound(f"no process with pid {pid}")


def resolve_binary(spec: str, pid: int | None = None, *, program: str | None = None) -> Target:
    """A path, a command on $PATH, or a library short name (`libc`, `z`, `libpython3.11`).

    A short name is the library the target loads: the one process `pid` maps
    or, with `program` (see `loaded_files`), the one that command will load;
    probing another same-named file (e.g. what ld.so's cache names, when the
    program has its own copy through RUNPATH) would see none of its calls.
    Only when the target has no such library (it may dlopen one later) or
    there is no target do `$PATH` and ld.so's cache decide, as for bcc tools."""
    if pid is not None:
        check_pid(pid)
    candidates = []
    if "/" in spec or os.path.exists(spec):
        candidates.append(spec)
    else:
        if pid is not None or program is not None:
            loaded = _library_loaded(spec, pid, program)
            if loaded:
                candidates.append(loaded)
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


def _process_name(pid: int) -> str:
    """What the process was started as: its comm is the name it was exec'd by
    (a symlink's own name), cut at 15 bytes; argv[0] gives it in full."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            comm = f.read().rstrip(b"\n").decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = os.path.basename(f.read().split(b"\0")[0].decode(errors="replace"))
    except OSError:
        return ""
    return argv0 if len(comm) == 15 and argv0.startswith(comm) else comm


def resolve_pid(pid: int) -> Target:
    check_pid(pid)
    exe = f"/proc/{pid}/exe"
    try:
        real = os.readlink(exe)
    except OSError as e:
        raise CoralError(f"cannot read the executable of pid {pid}: {e.strerror}") from None
    # The user knows the process by the name it runs as (redis-server), which
    # a symlink makes differ from its file (/usr/bin/redis-check-rdb): both.
    # Either may be any bytes the process chose: made safe for a terminal.
    name = _process_name(pid)
    display = real if name in ("", os.path.basename(real.removesuffix(" (deleted)"))) else f"{name} ({real})"
    # /proc/PID/exe is the process's own inode, whatever mount namespace it
    # lives in, so it is both the symbol source and the attach path. Its
    # mapping appears among the loaded files under its own name too; a file
    # deleted since it was mapped is not there to read.
    exe_identity = file_identity(exe)
    libraries = tuple(p for p in loaded_files(pid) if (i := file_identity(p)) is not None and i != exe_identity)
    return Target(path=exe, pid=pid, display=safe_text(display), libraries=libraries)


def _command_path(argv: list[str]) -> str:
    if not argv:
        raise CoralError("no command given after --")
    program = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    if not program or not os.path.isfile(program):
        raise CoralError(f"command not found: {argv[0]}")
    if not os.access(program, os.X_OK):
        raise CoralError(f"not executable: {argv[0]}")
    return program


def program_target(program: str, pid: int | None) -> Target:
    """A command coral starts, unpinned: its libraries are those ld.so will
    load for it with coral's environment, which it inherits."""
    path, *libraries = loaded_files(program=program)
    return Target(path=path, pid=pid, display=path, libraries=tuple(libraries))


def resolve_target(binary: str | None, pid: int | None, program: str | None = None) -> Target | None:
    """What a session's target probes when a script names no file: `binary`
    pinned, unless it is the `program` of the command coral started (then the
    command with its libraries, as for a `pid` alone); None with no target."""
    if binary and binary != program:
        return resolve_binary(binary, pid, program=program)
    if program:
        return program_target(program, pid)
    return resolve_pid(pid) if pid else None


def command_program(argv: list[str]) -> str:
    """The file `-- COMMAND` will run (symlinks resolved), found as the shell finds it."""
    return os.path.realpath(_command_path(argv))


class LaunchedCommand:
    """A command forked now but held before exec until `release()`, so the
    probes are in place before its first instruction runs."""

    def __init__(self, argv: list[str], *, stdout=None):
        # Exec'd by the name found, not the resolved file: a multi-call binary
        # or a launcher behind a symlink goes by the name it is started as.
        program = _command_path(argv)
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
        return program_target(self.program, self.pid)

    def release(self) -> None:
        if self._write_end is not None:
            os.write(self._write_end, b"g")
            os.close(self._write_end)
            self._write_end = None

    def kill(self) -> None:
        # Killed while still held, it never runs: the pipe is closed unwritten
        # (an EOF would release it too, so only once it is dead).
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self._write_end is not None:
            os.close(self._write_end)
            self._write_end = None
