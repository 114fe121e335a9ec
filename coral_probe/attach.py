"""Compiles a coral BPF program with bcc and attaches it: uprobes, Go return
probes, kprobes, fentry, tracepoints. Detaching is always complete."""

import contextlib
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

    def __init__(self, program: Program):
        require_privileges()
        bcc = import_bcc()
        ensure_mounted()
        self.program = program
        with _captured_stderr() as diagnostics:
            try:
                self.bpf = bcc.BPF(text=program.text.encode(), cflags=list(program.cflags))
            except Exception as e:  # bcc raises bare Exception
                failure = e
            else:
                failure = None
        if failure is not None:
            detail = _first_error(diagnostics[0]) if diagnostics else str(failure)
            if not os.path.exists(f"/lib/modules/{os.uname().release}/build"):
                raise EnvironmentProblem(f"BPF compile failed: no kernel headers for {os.uname().release}")
            raise BpfLoadError(detail)
        self.attached = 0

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


class BpfLoadError(EnvironmentProblem):
    """bcc could not compile or load (for fentry: attach) the program."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(f"BPF program failed to load: {detail}")


def kernel_has_kprobes() -> bool:
    return (os.path.exists("/sys/bus/event_source/devices/kprobe")
            or os.path.exists("/sys/kernel/tracing/kprobe_events"))
