"""Turns what the user asked for (functions in a target, kernel functions,
tracepoints) into one BPF program and the attach calls that go with it."""

from collections.abc import Callable
from dataclasses import dataclass, field

from . import bpf_source
from .attach import Attachment, BpfLoadError, kernel_has_kprobes, release_compiler_memory
from .errors import CoralError
from .kernel_symbols import kernel_function, tracepoint_name
from .symbols import MAX_FUNCTIONS, SymbolTable
from .targets import Target
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

    def load(self) -> Attachment:
        attachment = Attachment(self.program)
        try:
            self.attach(attachment)
        except BaseException:
            attachment.detach()
            raise
        # After attaching: loading the programs still runs through LLVM.
        release_compiler_memory()
        return attachment


def plan_functions(target: Target, patterns: list[str], opts: ProbeOptions) -> Plan:
    with SymbolTable(target.path) as table:
        functions, seen = [], set()
        for pattern in patterns:
            for fn in table.match(pattern, limit=opts.max_functions):
                if fn.symbol not in seen:
                    seen.add(fn.symbol)
                    functions.append(fn)
        if len(functions) > opts.max_functions:
            raise CoralError(f"{len(functions)} functions selected, more than the cap of {opts.max_functions}")
        go = table.is_go
        # Go: never uretprobes. A return probe on each RET, paired by stack pointer.
        returns = {fn.symbol: table.ret_offsets(fn) for fn in functions} if go and opts.with_return else {}
        # A void function's return register is garbage: its events get no ret.
        # Only asked with return probes, as it parses DWARF units.
        returns_value = [table.returns_value(fn) for fn in functions] if opts.with_return else []
    program = bpf_source.function_probes(
        len(functions), with_return=opts.with_return, min_duration_ns=opts.min_duration_ns,
        sample=opts.sample, go_abi=go, filter_tgid=target.pid, ringbuf_pages=opts.ringbuf_pages,
        returns_value=returns_value)

    def attach(a: Attachment) -> None:
        # Return probes first: a call entered between an entry probe and its
        # uretprobe would be recorded and never see its return. This way a
        # call's return is missed only if its entry is too (before attach).
        for probe_id, fn in enumerate(functions):
            if not opts.with_return:
                break
            if go:
                for offset in returns[fn.symbol]:
                    a.go_return_probe(target.path, fn.symbol, probe_id, target.pid, fn.address + offset)
            else:
                a.uretprobe(target.path, fn.symbol, probe_id, target.pid, address=fn.address)
        for probe_id, fn in enumerate(functions):
            a.uprobe(target.path, fn.symbol, probe_id, target.pid, address=fn.address)

    notes = ["Go binary: return probes on RET instructions, no uretprobes"] if go and opts.with_return else []
    return Plan("uprobe", [fn.name for fn in functions], opts.nargs, program, attach, target.display, notes)


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
