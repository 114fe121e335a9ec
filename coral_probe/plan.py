"""Turns what the user asked for (functions in a target, kernel functions,
tracepoints) into one BPF program and the attach calls that go with it."""

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _native, bpf_source, uprobe_links
from .attach import Attachment, BpfLoadError, kernel_has_kprobes, release_compiler_memory
from .errors import CoralError
from .function_lookup import Located, find_functions
from .kernel_symbols import kernel_function, tracepoint_name
from .symbols import MAX_FUNCTIONS, Function, SymbolTable
from .targets import Target, display_path
from .tracefs import ensure_mounted, tracepoint_fields


@dataclass(frozen=True)
class ProbeOptions:
    with_return: bool = True
    nargs: int = 0
    min_duration_ns: int = 0
    sample: int = 1
    ringbuf_pages: int = 1024  # 4 MiB: ~40k events of headroom
    max_functions: int = MAX_FUNCTIONS

    def __post_init__(self):
        if not 0 <= self.nargs <= 6:
            raise CoralError(f"invalid --args {self.nargs}: must be 0 to 6")
        if self.sample < 1:
            raise CoralError(f"invalid --sample {self.sample}: must be 1 or more (1 in N calls)")
        if self.min_duration_ns and not self.with_return:
            raise CoralError("--min-duration needs return probes; drop --no-ret")
        pages = self.ringbuf_pages
        if pages < 1 or pages & (pages - 1):
            raise CoralError(f"invalid ring buffer size {pages} pages: must be a power of two")


@dataclass
class Plan:
    probe_type: str            # uprobe | kprobe | tracepoint
    names: list[str]           # display name per probe_id
    nargs: int
    program: bpf_source.Program
    attach: Callable[[Attachment], None]
    target: str
    notes: list[str] = field(default_factory=list)
    # bcc USDT contexts (coral_probe/usdt.py): bcc generates the argument
    # readers and attaches the markers' uprobes when the program loads.
    usdt_contexts: tuple = ()
    # The same probes one by one, for when the kernel refuses a uprobe_multi
    # link (see uprobe_links.LinkRefused).
    per_probe: "Callable[[], Plan] | None" = None

    def load(self) -> Attachment:
        attachment = Attachment(self.program, usdt_contexts=self.usdt_contexts)
        try:
            self.attach(attachment)
        except uprobe_links.LinkRefused:
            attachment.detach()
            if self.per_probe is None:
                raise
            return self.per_probe().load()
        except BaseException:
            attachment.detach()
            raise
        # After attaching: loading the programs still runs through LLVM.
        release_compiler_memory()
        return attachment


@dataclass(frozen=True)
class _Point:
    """One probed function and where its probes go in `path`: virtual
    addresses (bcc converts them) and file offsets (for uprobe_multi links)."""
    path: str
    function: Function
    entry: int
    returns: tuple[int, ...]   # Go: each RET; C: the uretprobe's (== entry)
    entry_offset: int
    return_offsets: tuple[int, ...]
    returns_value: bool | None


def plan_functions(target: Target, patterns: list[str], opts: ProbeOptions) -> Plan:
    located = find_functions(target, patterns, limit=opts.max_functions)
    if len(located) > opts.max_functions:
        raise CoralError(f"{len(located)} functions selected, more than the cap of {opts.max_functions}")
    points, go = _probe_points(located, opts)
    notes = ["Go binary: return probes on RET instructions, no uretprobes"] if go and opts.with_return else []
    # Named without --binary, a function may live in a library the program loads.
    files = list(dict.fromkeys(p.path for p in points))
    where = target.display if files == [target.path] else ", ".join(display_path(f, target.pid) for f in files)

    def planned(mode: str) -> Plan:
        if mode == uprobe_links.PER_PROBE:
            _check_per_probe_quota(points, opts)
        program = bpf_source.function_probes(
            len(points), with_return=opts.with_return, min_duration_ns=opts.min_duration_ns,
            sample=opts.sample, go_abi=go, filter_tgid=target.pid, ringbuf_pages=opts.ringbuf_pages,
            returns_value=[p.returns_value for p in points], multi=mode == uprobe_links.MULTI)
        attach = _attach_linked if mode == uprobe_links.MULTI else _attach_one_by_one
        return Plan("uprobe", [p.function.name for p in points], opts.nargs, program,
                    lambda a: attach(a, points, target.pid, go, opts.with_return), where, notes)

    mode = uprobe_links.mode()
    plan = planned(mode)
    if mode == uprobe_links.MULTI:
        plan.per_probe = lambda: planned(uprobe_links.PER_PROBE)
    return plan


def _probe_points(located: list[Located], opts: ProbeOptions) -> tuple[list[_Point], bool]:
    points, abis = [], set()
    tables: dict[str, SymbolTable] = {}
    try:
        by_path: dict[str, list[Function]] = {}
        for found in located:
            by_path.setdefault(found.path, []).append(found.function)
        cheapest = {}
        for path, functions in by_path.items():
            table = tables.setdefault(path, SymbolTable(path))
            cheapest.update(zip(((path, f.symbol) for f in functions),
                                _cheapest_points(table, functions, opts.with_return)))
        for path, fn in ((found.path, found.function) for found in located):
            table = tables[path]
            abis.add(table.is_go)
            entry, uretprobe = cheapest[path, fn.symbol]
            if not opts.with_return:
                returns: tuple[int, ...] = ()
            elif table.is_go:
                # Go: never uretprobes (the runtime moves goroutine stacks). A
                # return probe on each RET, paired by the frame's place in the stack.
                returns = tuple(fn.address + off for off in table.ret_offsets(fn))
            else:
                returns = (uretprobe,)
            # A void function's return register is garbage: its events get no
            # ret. Only asked with return probes, as it parses DWARF units.
            returns_value = table.returns_value(fn) if opts.with_return else None
            points.append(_Point(path, fn, entry, returns, table.file_offset(entry),
                                 tuple(table.file_offset(r) for r in returns), returns_value))
    finally:
        for table in tables.values():
            table.close()
    if len(abis) > 1:
        raise CoralError("these functions mix Go and C calling conventions; probe each kind in a session of its own")
    return points, abis == {True}


def _cheapest_points(table: SymbolTable, functions: list[Function], with_return: bool) -> list[tuple[int, int]]:
    """(entry, uretprobe) addresses per function: past a first instruction the
    kernel would single-step (~10 µs a hit here: endbr64, sub, mov) to one it
    emulates (push, nop, branch: ~1 µs), where the rules of
    native/src/symbols.rs `attach_points` prove the probe reads the same
    there, and nothing enters the function past its start: no other symbol
    starts in between, no jump anywhere in the file lands there. Else the start."""
    points = []
    for fn in functions:
        try:
            found = _native.attach_points(table.code(fn), fn.address, table.is_go, with_return)
        except CoralError:  # no code for it (a symbol outside the sections of code)
            points.append((fn.address, fn.address))
            continue
        if found.reason == _native.KERNEL_REFUSES:
            raise CoralError(f"cannot probe {fn.name} in {table.path}: the kernel refuses a uprobe on its first "
                             "instruction (a lock or segment prefix), and no later one is safe to use")
        points.append((found.entry, found.ret if found.ret is not None else fn.address))
    moved = [i for i, (entry, _) in enumerate(points) if entry != functions[i].address]
    if moved:
        starts = sorted(f.address for f in table.functions)
        entered = [False] * len(moved)
        for address, code in table.executable_sections():
            found = _native.entered_between(code, address, [(functions[i].address, points[i][0]) for i in moved])
            entered = [a or b for a, b in zip(entered, found)]
        for k, i in enumerate(moved):
            start, entry = functions[i].address, points[i][0]
            at = bisect.bisect_right(starts, start)
            if entered[k] or (at < len(starts) and starts[at] <= entry):
                points[i] = (start, start)
    return points


# bcc refuses more perf-event probes than this per process ("global quota").
_BCC_PROBE_QUOTA = 1000


def _check_per_probe_quota(points: list[_Point], opts: ProbeOptions) -> None:
    needed = sum(1 + len(p.returns) for p in points)
    if needed > _BCC_PROBE_QUOTA:
        raise CoralError(f"{len(points)} functions need {needed} probes, more than the {_BCC_PROBE_QUOTA} "
                         "one-by-one uprobes bcc allows; this kernel has no uprobe_multi links (Linux 6.6+): "
                         "narrow the pattern")


def _attach_linked(a: Attachment, points: list[_Point], pid: int | None, go: bool, with_return: bool) -> None:
    """Per file, one link for every return probe, then one for every entry
    (return probes first: see `_attach_one_by_one`)."""
    by_path: dict[str, list[tuple[int, _Point]]] = {}
    for probe_id, point in enumerate(points):
        by_path.setdefault(point.path, []).append((probe_id, point))
    for path, group in by_path.items():
        if with_return:
            offsets, cookies = [], []
            for probe_id, point in group:
                cookie = bpf_source.multi_cookie(probe_id, point.returns_value)
                offsets += point.return_offsets
                cookies += [cookie] * len(point.return_offsets)
            a.uprobe_multi(path, offsets, cookies, pid, program="coral_return", returns=not go)
        a.uprobe_multi(path, [p.entry_offset for _, p in group], [probe_id for probe_id, _ in group], pid,
                       program="coral_entry", returns=False)
    a.attached = len(points)


def _attach_one_by_one(a: Attachment, points: list[_Point], pid: int | None, go: bool, with_return: bool) -> None:
    # Return probes first: a call entered between an entry probe and its
    # uretprobe would be recorded and never see its return. This way a call's
    # return is missed only if its entry is too (before attach).
    for probe_id, point in enumerate(points):
        if not with_return:
            break
        for address in point.returns:
            if go:
                a.go_return_probe(point.path, point.function.symbol, probe_id, pid, address)
            else:
                a.uretprobe(point.path, point.function.symbol, probe_id, pid, address=address)
    for probe_id, point in enumerate(points):
        a.uprobe(point.path, point.function.symbol, probe_id, pid, address=point.entry)
    a.attached = len(points)  # functions, as through links: not entries + returns


def plan_tracepoints(specs: list[str], opts: ProbeOptions, pid: int | None) -> Plan:
    ensure_mounted()
    parsed, fields = [], []
    for spec in specs:
        category, name = tracepoint_name(spec)
        parsed.append((category, name))
        fields.append(tracepoint_fields(category, name))
    program = bpf_source.tracepoint_probes(fields, filter_tgid=pid, ringbuf_pages=opts.ringbuf_pages)
    nargs = max((min(len(f), 6) for f in fields), default=0)

    def attach(a: Attachment) -> None:
        for probe_id, (category, name) in enumerate(parsed):
            a.tracepoint(category, name, probe_id)

    notes = [f"{c}:{n} args: {', '.join(f.name for f in fs[:6]) or '-'}" for (c, n), fs in zip(parsed, fields)]
    return Plan("tracepoint", list(specs), nargs, program, attach, "kernel", notes)


def load_kernel_functions(functions: list[str], opts: ProbeOptions, pid: int | None) -> tuple[Plan, Attachment]:
    """kprobes where the kernel has them, else fentry, else one clear error."""
    functions = [kernel_function(name) for name in functions]
    kprobe_error = "kprobes are not available on this kernel (CONFIG_KPROBES is not set)"
    if kernel_has_kprobes():
        program = bpf_source.function_probes(
            len(functions), with_return=opts.with_return, min_duration_ns=opts.min_duration_ns,
            sample=opts.sample, go_abi=False, filter_tgid=pid, ringbuf_pages=opts.ringbuf_pages)

        def attach(a: Attachment) -> None:
            for probe_id, fn in enumerate(functions):
                a.kprobe(fn, probe_id, opts.with_return)

        plan = Plan("kprobe", list(functions), opts.nargs, program, attach, "kernel")
        try:
            return plan, plan.load()
        except Exception as e:  # noqa: BLE001 - bcc raises bare Exception
            kprobe_error = f"kprobe failed: {e}"
    program = bpf_source.fentry_probes(functions, filter_tgid=pid, ringbuf_pages=opts.ringbuf_pages)
    plan = Plan("kprobe", list(functions), 0, program, lambda a: None, "kernel",
                ["fentry fallback: entry events only"])
    try:
        return plan, plan.load()
    except BpfLoadError as e:
        fentry_error = e.detail
    names = ", ".join(functions)
    raise CoralError(f"cannot probe kernel function {names}: {kprobe_error}, and the fentry fallback "
                     f"was refused ({fentry_error}); use --tracepoint CATEGORY:NAME instead")
