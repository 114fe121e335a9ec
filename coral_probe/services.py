"""Services: the names probes and queries go by. `coral agent start
--service NAME=BINARY` names a file, `coral probe attach --service NAME` one
session; any other session is its binary's basename.

A session's binary is matched to the agent's names as a file (device and
inode), not as a path: `./payments`, a symlink to it and /proc/PID/exe of its
process all name the same service."""

from __future__ import annotations

import os
import re

from .errors import CoralError

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_name(name: str, option: str) -> str:
    if not _NAME.fullmatch(name):
        raise CoralError(f"invalid {option} {name!r}: 1 to 64 letters, digits, '_', '.' or '-'")
    return name


def _probed_file(target: str, pid: int | None) -> str | None:
    """The file a session probed, from what its row records: a path, or for
    `--pid` the process's executable, shown as `PATH` or `NAME (PATH)`."""
    if os.path.isabs(target) and os.path.isfile(target):
        return target
    if pid:
        exe = f"/proc/{pid}/exe"
        try:
            real = os.readlink(exe)
        except OSError:
            return None
        if target == real or target.endswith(f" ({real})"):
            return exe
    return None


class ServiceMap:
    """The agent's `--service NAME=BINARY` names, each for one real file."""

    def __init__(self, binaries: dict[str, str] | None = None):
        self.binaries = dict(binaries or {})  # name -> real path

    @classmethod
    def parse(cls, specs: list[str] | tuple[str, ...]) -> "ServiceMap":
        binaries: dict[str, str] = {}
        for spec in specs:
            name, sep, binary = spec.partition("=")
            if not sep or not binary:
                raise CoralError(f"invalid --service {spec!r}: NAME=BINARY")
            check_name(name, "--service name")
            if name in binaries:
                raise CoralError(f"--service {name} given twice")
            real = os.path.realpath(binary)
            if not os.path.isfile(real):
                raise CoralError(f"--service {name}: binary not found: {binary}")
            binaries[name] = real
        return cls(binaries)

    @property
    def names(self) -> list[str]:
        return sorted(self.binaries)

    def name_for(self, path: str) -> str | None:
        """The name given to the file at `path`, if any."""
        from .targets import file_identity  # and pyelftools with it: only once a session begins

        identity = file_identity(path)
        if identity is None:
            return None
        return next((name for name, binary in sorted(self.binaries.items()) if file_identity(binary) == identity),
                    None)

    def session_service(self, explicit: str | None, target: str, pid: int | None, *,
                        binary: str | None = None) -> str:
        """A session's service: the name it was attached with, else this
        map's name for its binary (`binary`: the probed file, when the one who
        attached says it; else found from the target), else the binary's
        basename (for kernel probes: "kernel")."""
        if explicit:
            return explicit
        probed = binary if binary and os.path.isfile(binary) else _probed_file(target, pid)
        if probed is None:
            return target.rstrip("/").rsplit("/", 1)[-1] or target
        return self.name_for(probed) or os.path.basename(os.path.realpath(probed))
