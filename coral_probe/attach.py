"""Compiles a coral BPF program with bcc and attaches it: uprobes, Go return
probes, kprobes, fentry, tracepoints. Detaching is always complete."""

import contextlib
import errno
import os
import re
import tempfile

from .bpf_source import Program
from .errors import CoralError, EnvironmentProblem
from .tracefs import ensure_mounted

_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


def effective_capabilities() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def require_privileges() -> None:
    caps = effective_capabilities()
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    if not (has(_CAP_SYS_ADMIN) or (has(_CAP_BPF) and has(_CAP_PERFMON))):
        raise CoralError("permission denied: attaching eBPF probes needs root "
                         "(or CAP_BPF and CAP_PERFMON); run with sudo")


def import_bcc():
    try:
        import bcc
    except ImportError:
        raise EnvironmentProblem("bcc is not importable (Debian package python3-bpfcc)") from None
    return bcc


@contextlib.contextmanager
def _captured_stderr():
    """bcc's clang prints diagnostics straight to fd 2; keep them to report
    the first error in one line instead of pages of compiler output."""
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        captured: list[str] = []
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def release_compiler_memory() -> None:
    """bcc maps LLVM and clang (~130 MB of code) for the compile; hand those
    pages back so the agent streams at its own size, not the compiler's."""
    from . import _native

    _native.page_out_libraries(["libLLVM", "libclang"])


def _first_error(diagnostics: str) -> str:
    for line in diagnostics.splitlines():
        if "error:" in line or "fatal" in line.lower():
            return re.sub(r"^.*?(error:|fatal error:)", r"\1", line).strip()
    lines = [line for line in diagnostics.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


class Attachment:
    """One compiled module plus everything attached from it."""

    def __init__(self, program: Program, *, usdt_contexts=()):
        require_privileges()
        bcc = import_bcc()
        ensure_mounted()
        self.program = program
        with _captured_stderr() as diagnostics:
            try:
                self.bpf = bcc.BPF(text=program.text.encode(), cflags=list(program.cflags),
                                   usdt_contexts=list(usdt_contexts))
            except Exception as e:  # bcc raises bare Exception
                failure = e
            else:
                failure = None
        if failure is not None:
            # Nothing from clang: bcc failed after the compile (e.g. attaching a USDT marker).
            detail = _first_error(diagnostics[0]) if diagnostics and diagnostics[0].strip() else str(failure)
            if not os.path.exists(f"/lib/modules/{os.uname().release}/build"):
                raise EnvironmentProblem(f"BPF compile failed: no kernel headers for {os.uname().release}")
            raise BpfLoadError(detail)
        self.attached = 0
        self.usdt_contexts = tuple(usdt_contexts)  # their semaphores are lowered at detach
        self.links: list[int] = []  # uprobe_multi link fds: closing one detaches all its probes

    @property
    def ringbuf_fd(self) -> int:
        return self.bpf[b"events"].map_fd

    def _attach(self, what: str, call) -> None:
        try:
            call()
        except Exception as e:  # bcc raises bare Exception with a message
            raise CoralError(f"cannot attach {what}: {e}") from None
        self.attached += 1

    # bcc takes bytes (str works but warns on every call). By address, not
    # by name: a stripped Go binary's functions come from .gopclntab, which
    # bcc's name lookup (.symtab) does not read, and two symbols may share a name.
    def uprobe(self, path: str, symbol: str, probe_id: int, pid: int | None, *, address: int) -> None:
        self._attach(f"uprobe {symbol} ({address:#x}) in {path}", lambda: self.bpf.attach_uprobe(
            name=path.encode(), addr=address, fn_name=f"coral_entry_{probe_id}".encode(), pid=pid or -1))

    def uretprobe(self, path: str, symbol: str, probe_id: int, pid: int | None, *, address: int) -> None:
        self._attach(f"uretprobe {symbol} ({address:#x}) in {path}", lambda: self.bpf.attach_uretprobe(
            name=path.encode(), addr=address, fn_name=f"coral_return_{probe_id}".encode(), pid=pid or -1))

    def go_return_probe(self, path: str, symbol: str, probe_id: int, pid: int | None, address: int) -> None:
        self._attach(f"return probe {symbol} ({address:#x}) in {path}", lambda: self.bpf.attach_uprobe(
            name=path.encode(), addr=address, fn_name=f"coral_return_{probe_id}".encode(), pid=pid or -1))

    def uprobe_multi(self, path: str, offsets: list[int], cookies: list[int], pid: int | None, *,
                     program: str, returns: bool) -> None:
        """One link for every offset of `path` (file offsets, not addresses):
        `program` (coral_entry / coral_return) runs at each, with its cookie."""
        from . import uprobe_links

        bcc = import_bcc()
        try:
            fn = self.bpf.load_func(program.encode(), bcc.BPF.KPROBE,
                                    attach_type=uprobe_links.BPF_TRACE_UPROBE_MULTI)
            fd = uprobe_links.link(fn.fd, path, offsets, cookies, pid, returns=returns)
        except OSError as e:
            kind = "return probes" if returns else "probes"
            refused = uprobe_links.LinkRefused if e.errno == errno.EINVAL else CoralError
            raise refused(f"cannot attach {len(offsets)} {kind} in {path}: {e.strerror}") from None
        except Exception as e:  # bcc's load_func raises bare Exception with the verifier's verdict
            raise CoralError(f"cannot load {program}: {e}") from None
        self.links.append(fd)

    def kprobe(self, function: str, probe_id: int, with_return: bool) -> None:
        self.bpf.attach_kprobe(event=function.encode(), fn_name=f"coral_entry_{probe_id}".encode())
        if with_return:
            self.bpf.attach_kretprobe(event=function.encode(), fn_name=f"coral_return_{probe_id}".encode())
        self.attached += 1

    def tracepoint(self, category: str, name: str, probe_id: int) -> None:
        self._attach(f"tracepoint {category}:{name}", lambda: self.bpf.attach_tracepoint(
            tp=f"{category}:{name}".encode(), fn_name=f"coral_tracepoint_{probe_id}".encode()))

    def counters(self) -> dict[str, int]:
        from . import _native  # the slot names, pinned to bpf/coral_event.h by the Rust layout test

        table = self.bpf[b"counters"]
        return {name: int(table.sum(i).value) for i, name in enumerate(_native.COUNTER_NAMES)}

    def stop_counting(self) -> None:
        """The session's end, at once: every program returns before counting
        or sending anything (bpf/coral_common.h `control`)."""
        import ctypes

        if self.bpf is not None:
            self.bpf[b"control"][ctypes.c_int(0)] = ctypes.c_uint32(1)

    def detach_probes(self) -> None:
        """Stops new hits while the maps stay readable (counters, ring buffer)."""
        bpf = self.bpf
        if bpf is None:
            return
        while self.links:
            os.close(self.links.pop())
        for ev_name in list(bpf.uprobe_fds):
            bpf.detach_uprobe_event(ev_name)
        for ev_name in list(bpf.kprobe_fds):
            bpf.detach_kprobe_event(ev_name)
        for tp in list(bpf.tracepoint_fds):
            bpf.detach_tracepoint(tp)
        for fn in list(bpf.kfunc_entry_fds):
            bpf.detach_kfunc(fn)

    def detach(self) -> None:
        """Removes every probe and frees the programs and maps."""
        if self.bpf is not None:
            self.detach_probes()
            self.bpf.cleanup()
            self.bpf = None
        close_usdt_contexts(self.usdt_contexts)


def close_usdt_contexts(contexts) -> None:
    """Closes bcc USDT contexts now, which lowers the semaphores of the
    is-enabled markers they raised in the target process: not left to the
    garbage collector, which coral's exit (os._exit) never runs."""
    if not contexts:
        return
    from bcc.libbcc import lib

    for context in contexts:
        if context.context:
            lib.bcc_usdt_close(context.context)
            context.context = None  # bcc's own __del__ closes None: a no-op


class BpfLoadError(EnvironmentProblem):
    """bcc could not compile or load (for fentry: attach) the program."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(f"BPF program failed to load: {detail}")


def kernel_has_kprobes() -> bool:
    return (os.path.exists("/sys/bus/event_source/devices/kprobe")
            or os.path.exists("/sys/kernel/tracing/kprobe_events"))
