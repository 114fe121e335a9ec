"""USDT markers (`provider:name`, the sys/sdt.h probes Postgres, Python, Node,
the JVM and libstdc++ ship): found in the ELF notes of the target's files by
bcc's USDT support and probed by one program, bpf/usdt.bpf.c, whose argument
readers bcc generates from those notes. An event per hit, like a function's
entry without its return: args are the marker's first six arguments.

An is-enabled marker fires only while its semaphore (a counter in the
process's memory) is raised; bcc raises it through /proc/PID/mem, so such a
marker needs a running process (`--pid`), and coral lowers it again at detach."""

import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import bpf_source
from .attach import Attachment, close_usdt_contexts, import_bcc
from .errors import CoralError, NotFound
from .plan import Plan, ProbeOptions
from .targets import Target, display_path, file_identity, loaded_files, resolve_pid

# PROVIDER:NAME, each a C identifier; `*` and `?` match several (names only shown, never C text).
_SPEC = re.compile(r"([A-Za-z0-9_*?]+):([A-Za-z0-9_*?]+)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LISTED = 30  # markers an error message names before "... and N more"


@dataclass(frozen=True)
class Marker:
    provider: str
    name: str
    path: str        # the file whose notes declare it (as coral opens it)
    nargs: int
    locations: int
    semaphore: int   # its is-enabled counter's address; 0: it always fires

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.name}"


def _usdt_class():
    import_bcc()
    from bcc.usdt import USDT, USDTException

    return USDT, USDTException


def _bcc_path(path: str) -> str:
    if not path.isascii():
        raise CoralError(f"bcc's USDT support takes ASCII paths only: {path!r}")
    return path


def markers_in(path: str) -> list[Marker]:
    """The markers `path`'s notes declare (none for a file without .note.stapsdt)."""
    USDT, USDTException = _usdt_class()
    try:
        context = USDT(path=_bcc_path(path))
    except USDTException:
        return []  # not an ELF file bcc can read: it declares nothing
    found = []
    for probe in context.enumerate_probes():
        provider, name = probe.provider.decode(errors="replace"), probe.name.decode(errors="replace")
        # Only C identifiers can be asked for (and reach bcc); anything else a crafted note says is skipped.
        if _IDENTIFIER.fullmatch(provider) and _IDENTIFIER.fullmatch(name):
            found.append(Marker(provider, name, path, probe.num_arguments, probe.num_locations, probe.semaphore))
    return found


def target_files(binary: Target | None, pid: int | None, program: str | None) -> list[str]:
    """Where to look: the file named (--binary); else a command's program and the
    libraries it will load; else every file process `pid` maps with code."""
    if binary is not None:
        paths = [binary.path]
    elif program is not None:
        paths = loaded_files(program=program)
    elif pid is not None:
        paths = loaded_files(pid)
    else:
        raise CoralError("no target: give --binary PATH, --pid PID or -- COMMAND [ARGS]")
    unique: dict[tuple[int, int], str] = {}
    for path in paths:
        identity = file_identity(path)
        if identity is not None:
            unique.setdefault(identity, path)
    return list(unique.values())


def list_markers(binary: Target | None, pid: int | None, program: str | None = None) -> list[Marker]:
    return [m for path in target_files(binary, pid, program) for m in markers_in(path)]


def _where(binary: Target | None, pid: int | None, program: str | None) -> str:
    if binary is not None:
        return binary.display
    if program is not None:
        return f"{program} or the libraries it loads"
    return f"pid {pid} (its executable and libraries)"


def _unknown(spec: str, found: list[Marker], where: str) -> NotFound:
    if not found:
        return NotFound(f"no USDT marker {spec}: {where} has no USDT markers (sys/sdt.h probes)")
    names = list(dict.fromkeys(m.spec for m in found))
    more = f" ... and {len(names) - _LISTED} more (coral probe list --usdt)" if len(names) > _LISTED else ""
    return NotFound(f"no USDT marker {spec} in {where}; it has: {', '.join(names[:_LISTED])}{more}")


def parse_spec(spec: str) -> tuple[str, str]:
    match = _SPEC.fullmatch(spec)
    if not match:
        raise CoralError(f"invalid USDT marker '{spec}': expected PROVIDER:NAME "
                         "(e.g. python:function__entry; * in NAME matches several)")
    return match[1], match[2]


@dataclass
class UsdtPlan(Plan):
    """bcc's USDT contexts are made when the plan is loaded, not planned: making one
    for a process raises the semaphores of its is-enabled markers, which a plan
    never loaded (--dump-bpf, a stop during start-up) would leave raised."""

    make_contexts: Callable[[], tuple] | None = None

    def load(self) -> Attachment:
        if self.make_contexts is not None:
            self.usdt_contexts = self.make_contexts()
        try:
            return super().load()
        except BaseException:
            close_usdt_contexts(self.usdt_contexts)
            raise


def plan_usdt(specs: list[str], opts: ProbeOptions, *, binary: Target | None, pid: int | None,
              program: str | None = None) -> Plan:
    """`binary`: the file named (--binary), resolved; else `program`, a command held
    in process `pid` before its exec; else process `pid`, running."""
    if opts.min_duration_ns:
        raise CoralError("a USDT marker has no duration (an event per hit, no return): drop --min-duration")
    if opts.sample != 1:
        raise CoralError("sampling is for functions: a USDT marker sends every hit (drop --sample)")
    wanted = [parse_spec(spec) for spec in specs]
    files = target_files(binary, pid, program)
    found = [m for path in files for m in markers_in(path)]
    where = _where(binary, pid, program)
    selected: list[Marker] = []
    named: list[Marker] = []  # asked for by name, not only matched by a wildcard
    for spec, (provider, name) in zip(specs, wanted):
        matches = [m for m in found if fnmatch.fnmatchcase(m.provider, provider) and fnmatch.fnmatchcase(m.name, name)]
        if not matches:
            raise _unknown(spec, found, where)
        selected += [m for m in matches if m not in selected]
        if not any(c in spec for c in "*?"):
            named += matches
    if len(selected) > opts.max_functions:
        raise CoralError(f"{len(selected)} USDT markers selected, more than the cap of {opts.max_functions}: "
                         f"{', '.join(m.spec for m in selected[:_LISTED])}")
    running = _running_files(pid, program)
    # A wildcard passes over the is-enabled markers it cannot enable (noted); a name does not.
    skipped = [m for m in selected if m.semaphore and file_identity(m.path) not in running]
    for m in skipped:
        if m in named or len(skipped) == len(selected):
            how = ("its command is not running yet when the probes attach"
                   if program is not None and pid is not None else "no running process was given")
            raise CoralError(f"USDT marker {m.spec} is an is-enabled marker (a semaphore guards it) and bcc "
                             f"can raise that semaphore only in a running process that maps {display_path(m.path, pid)}; "
                             f"{how}: use --pid PID")
    selected = [m for m in selected if m not in skipped]
    arg_types = _argument_types(selected, pid)
    program_text = bpf_source.usdt_probes(arg_types, filter_tgid=pid, ringbuf_pages=opts.ringbuf_pages)
    specs_seen = [m.spec for m in selected]
    names = [m.spec if specs_seen.count(m.spec) == 1 else f"{m.spec}@{os.path.basename(m.path)}"
             for m in selected]
    nargs = max((min(m.nargs, 6) for m in selected), default=0)
    notes = [f"{m.spec}: {m.nargs} args, the first 6 captured" for m in selected if m.nargs > 6]
    notes += [f"{m.spec} left out: an is-enabled marker needs --pid" for m in skipped]

    def make_contexts() -> tuple:
        return _enabled_contexts(selected, pid)

    def attach(a: Attachment) -> None:
        # bcc attached a uprobe per marker location when it loaded the program.
        a.attached = len(a.bpf.uprobe_fds)
        if a.attached < len(selected):
            raise CoralError(f"bcc attached {a.attached} uprobes for {len(selected)} USDT markers")

    if binary is not None:
        display = binary.display
    elif program is not None:
        display = program
    else:
        display = resolve_pid(pid).display if pid is not None else "?"
    return UsdtPlan(probe_type="usdt", names=names, nargs=nargs, program=program_text, attach=attach,
                    target=display, notes=notes, make_contexts=make_contexts)


def _running_files(pid: int | None, program: str | None) -> set:
    """The files a running target process maps; none for a command still held
    before its exec (its pid is a shell), or without a process."""
    if pid is None or program is not None:
        return set()
    return {file_identity(path) for path in loaded_files(pid)}


def _argument_types(selected: list[Marker], pid: int | None) -> list[list[str]]:
    """bcc's ctype of each marker's first six arguments (the widest across its locations)."""
    USDT, USDTException = _usdt_class()
    contexts: dict[str, Any] = {}
    out = []
    for m in selected:
        context = contexts.get(m.path)
        if context is None:
            try:
                context = contexts[m.path] = USDT(path=_bcc_path(m.path))
            except USDTException:
                raise CoralError(f"cannot read the USDT markers of {display_path(m.path, pid)}") from None
        types = [context.get_probe_arg_ctype(m.spec, i) for i in range(min(m.nargs, 6))]
        for ctype in types:
            if ctype not in bpf_source.USDT_ARG_TYPES:
                raise CoralError(f"USDT marker {m.spec} in {display_path(m.path, pid)}: argument type {ctype!r} "
                                 "is not an integer coral can read")
        out.append(types)
    return out


def _enabled_contexts(selected: list[Marker], pid: int | None) -> tuple:
    """One bcc context per file, each marker enabled as coral_usdt_N (bcc
    generates its readers under that name and attaches its uprobes to it)."""
    USDT, USDTException = _usdt_class()
    contexts: dict[str, Any] = {}
    try:
        for probe_id, m in enumerate(selected):
            context = contexts.get(m.path)
            if context is None:
                try:
                    context = USDT(pid=pid, path=_bcc_path(m.path)) if pid else USDT(path=_bcc_path(m.path))
                except USDTException:
                    raise CoralError(f"cannot read the USDT markers of {display_path(m.path, pid)}"
                                     f"{f' in pid {pid} (has it exited?)' if pid else ''}") from None
                contexts[m.path] = context
            try:
                context.enable_probe(m.spec, f"coral_usdt_{probe_id}")
            except USDTException:
                raise CoralError(f"bcc could not enable USDT marker {m.spec} in {display_path(m.path, pid)}"
                                 f"{f' for pid {pid}' if pid else ''}") from None
        for path, context in contexts.items():
            # bcc's argument readers, made here to fail with a reason: a marker of
            # a shared library at several places needs a process to place them.
            try:
                context.get_text()
            except AttributeError:  # bcc_usdt_genargs gave NULL, which bcc decodes
                raise CoralError(f"bcc cannot read the arguments of the USDT markers in {display_path(path, pid)} "
                                 "without a process: give --pid PID")
    except BaseException:
        close_usdt_contexts(tuple(contexts.values()))
        raise
    return tuple(contexts.values())
