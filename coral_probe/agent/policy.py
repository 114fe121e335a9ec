"""What a script may probe, decided here and nowhere else (subscribe and
functions.list/get ask). By default a script probes only its target: the
binary it was started against and the libraries that binary links, the
process it was started against and the files that process maps, and only
in that process. Kernel functions, tracepoints, other files and other
processes need a rule the operator gave: `--allow-probe KIND[:PATTERN]`."""

import fnmatch
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import CoralError, PermissionDenied
from ..gen.coral.sdk.v1 import sdk_pb2 as pb

if TYPE_CHECKING:
    from .subscriptions import AgentTarget

KINDS = ("kernel", "tracepoint", "binary", "pid")


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: str  # shell-style (fnmatch, `*` also crosses `/`); binary patterns match real paths

    def __str__(self) -> str:
        return f"{self.kind}:{self.pattern}"


def parse_rule(spec: str) -> Rule:
    kind, _, pattern = spec.partition(":")
    if kind not in KINDS or (":" in spec and not pattern):
        raise CoralError(f"invalid --allow-probe '{spec}': expected KIND[:PATTERN] with KIND one of "
                         f"{', '.join(KINDS)} (e.g. tracepoint:syscalls:*, kernel:vfs_read, binary:/usr/lib/*)")
    return Rule(kind, pattern or "*")


@dataclass(frozen=True)
class ProbePolicy:
    rules: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, specs) -> "ProbePolicy":
        return cls(tuple(parse_rule(s) for s in specs))

    def check_subscribe(self, req: pb.Subscribe, target: "AgentTarget") -> None:
        if req.kind == pb.PROBE_KIND_KPROBE:
            self._require("kernel", req.name, target)
        elif req.kind == pb.PROBE_KIND_TRACEPOINT:
            self._require("tracepoint", req.name, target)
        elif req.kind in (pb.PROBE_KIND_UPROBE, pb.PROBE_KIND_URETPROBE, pb.PROBE_KIND_USDT):
            if req.binary:
                self.check_binary(req.binary, target)
        else:
            raise PermissionDenied(f"probe kind {req.kind} is not allowed by the probe policy")
        if req.pid and target.pid and req.pid != target.pid:
            # Without a target pid the probe already sees every process of
            # the target binary: a pid only narrows it.
            self._require("pid", str(req.pid), target)

    def check_binary(self, spec: str, target: "AgentTarget") -> None:
        """A file other than the target's own (functions.list/get, uprobes): refused
        whether or not it exists, so a refusal tells nothing about the file."""
        from ..targets import file_identity, resolve_binary

        try:
            path = spec if "/" in spec else resolve_binary(spec, target.pid, program=target.program).path
            real = os.path.realpath(path)
        except (CoralError, OSError):
            # A name that resolves to nothing is refused like any other: the
            # script learns nothing of which libraries exist.
            path = real = spec
        identity = file_identity(path)
        if identity is not None and identity in _target_files(target):
            return
        # Matched by its real path, quoted as the script wrote it: the real
        # path of /proc/self/cwd/x or /proc/1/fd/3 is the agent's to know.
        self._require("binary", real, target, shown=spec, rule="binary:<its real path>")

    def allows(self, kind: str, name: str) -> bool:
        """Whether an operator's rule allows `name` (a real path for "binary")."""
        return any(r.kind == kind and fnmatch.fnmatchcase(name, r.pattern) for r in self.rules)

    def _require(self, kind: str, name: str, target: "AgentTarget", shown: str | None = None,
                 rule: str | None = None) -> None:
        if self.allows(kind, name):
            return
        given = "; allowed: " + ", ".join(map(str, self.rules)) if self.rules else ""
        raise PermissionDenied(
            f"probe policy refused {kind} {shown or name} (rule: a script probes only its target, "
            f"{_describe(target)}{given}; the operator may add --allow-probe {rule or f'{kind}:{name}'})")


def _describe(target: "AgentTarget") -> str:
    parts = [p for p in (f"pid {target.pid}" if target.pid else "", target.binary or "") if p]
    return f"here {' and '.join(parts)} with their libraries" if parts else "and this script has none"


def _target_files(target: "AgentTarget") -> set[tuple[int, int]]:
    """(device, inode) of every file the target may be probed in."""
    from ..libraries import linked_files
    from ..targets import file_identity, loaded_files, resolve_binary

    paths: list[str] = []
    if target.binary:
        binary = resolve_binary(target.binary, target.pid, program=target.program).path
        paths += [binary, *linked_files(binary)]
    if target.program:
        # `--binary LIB -- CMD`: the command is the target too, with what it loads.
        paths += loaded_files(program=target.program)
    if target.pid:
        paths += [f"/proc/{target.pid}/exe", *loaded_files(target.pid)]
    return {i for i in map(file_identity, paths) if i is not None}
