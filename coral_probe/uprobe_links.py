"""uprobe_multi links (Linux 6.6+): every function of one file attached to one
BPF program by one BPF_LINK_CREATE, each told apart by its cookie, the pid
filter inside the link, and the whole set detached by closing one fd.

Made here with ctypes because bcc 0.26 (Debian's) has no call for them:
libbpf's bpf_program__attach_uprobe_multi is what a libbpf loader would use,
and bcc only exposes per-probe perf events. The two syscall layouts below are
the kernel's `union bpf_attr` (include/uapi/linux/bpf.h) for BPF_PROG_LOAD
and BPF_LINK_CREATE."""

import ctypes
import errno
import os
import re
from functools import cache

from .errors import CoralError

_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_BPF_PROG_LOAD = 5
_BPF_LINK_CREATE = 28
_BPF_PROG_TYPE_KPROBE = 2
BPF_TRACE_UPROBE_MULTI = 48
_BPF_F_UPROBE_MULTI_RETURN = 1
# kernel/trace/bpf_trace.c: one link takes at most this many offsets (E2BIG past it).
MAX_UPROBE_MULTI_CNT = 1 << 20
# include/linux/errno.h: the kernel-internal "operation not supported", which
# reaches user space as is (Python's errno table has no name for it).
_ENOTSUPP = 524

MODE_ENV = "CORAL_UPROBE_MODE"  # "per-probe" forces the pre-6.6 path (tests, comparisons)
MULTI, PER_PROBE = "uprobe_multi", "per-probe"


class _LinkCreate(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("target_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("path", ctypes.c_uint64), ("offsets", ctypes.c_uint64),
                ("ref_ctr_offsets", ctypes.c_uint64), ("cookies", ctypes.c_uint64),
                ("cnt", ctypes.c_uint32), ("multi_flags", ctypes.c_uint32),
                ("pid", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"no bpf syscall number for {os.uname().machine}")
    fd = _libc.syscall(number, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def mode() -> str:
    """How function probes attach on this machine (`coral doctor` says it)."""
    if os.environ.get(MODE_ENV) == PER_PROBE:
        return PER_PROBE
    return MULTI if kernel_has_uprobe_multi() else PER_PROBE


@cache
def kernel_has_uprobe_multi() -> bool:
    """libbpf's feature probe: a program typed for uprobe_multi loads only on
    6.6+, and its link to a directory fails with EBADF only where the kernel
    knows the attach type (EINVAL elsewhere)."""
    # r0 = 0; exit
    insns = (ctypes.c_uint64 * 2)(0x00000000000000b7, 0x0000000000000095)
    license = ctypes.create_string_buffer(b"GPL")
    load = _ProgLoad(prog_type=_BPF_PROG_TYPE_KPROBE, insn_cnt=2, insns=ctypes.addressof(insns),
                     license=ctypes.addressof(license), expected_attach_type=BPF_TRACE_UPROBE_MULTI)
    try:
        prog_fd = _bpf(_BPF_PROG_LOAD, load)
    except OSError:
        return False
    try:
        link(prog_fd, "/", [0], [0], None, returns=False)
    except OSError as e:
        return e.errno == errno.EBADF
    except CoralError:
        return False
    finally:
        os.close(prog_fd)
    return True


class LinkRefused(CoralError):
    """The kernel refused a uprobe_multi link with EINVAL for a place where it
    takes a per-probe uprobe: another tool's uprobe is already there with a
    different reference-counter offset (bcc 0.26 passes an uninitialised one:
    "ref_ctr_offset mismatch" in the kernel log), and a multi link cannot
    share it. The session attaches one probe at a time instead."""


def link(prog_fd: int, path: str, offsets: list[int], cookies: list[int], pid: int | None, *,
         returns: bool) -> int:
    """Attaches `prog_fd` at each file offset of `path` (uretprobes with
    `returns`), the cookie of each offset beside it; returns the link's fd,
    whose close detaches them all at once."""
    count = len(offsets)
    if count > MAX_UPROBE_MULTI_CNT:
        raise CoralError(f"{count} probe points in {path}, more than the kernel's limit of "
                         f"{MAX_UPROBE_MULTI_CNT} per uprobe_multi link")
    offset_array = (ctypes.c_uint64 * count)(*offsets)
    cookie_array = (ctypes.c_uint64 * count)(*cookies)
    encoded = ctypes.create_string_buffer(os.fsencode(path))
    attr = _LinkCreate(prog_fd=prog_fd, attach_type=BPF_TRACE_UPROBE_MULTI,
                       path=ctypes.addressof(encoded), offsets=ctypes.addressof(offset_array),
                       cookies=ctypes.addressof(cookie_array), cnt=count,
                       multi_flags=_BPF_F_UPROBE_MULTI_RETURN if returns else 0,
                       pid=link_pid(pid, os.uname().release))
    try:
        return _bpf(_BPF_LINK_CREATE, attr)
    except OSError as e:
        if e.errno == _ENOTSUPP:
            # The kernel's own errno, unknown to libc ("Unknown error 524"): the
            # x86 uprobe decoder refuses some instructions (lock and segment
            # prefixes, ...), and a link is refused whole for any one of them.
            raise OSError(e.errno, "the kernel refuses a uprobe on one of these instructions") from None
        raise


def link_pid(pid: int | None, release: str) -> int:
    """The pid a link filters on, for kernel `release` (os.uname().release).

    Before Linux 6.10 ("bpf: fix multi-uprobe PID filtering logic") a
    uprobe_multi link compared its pid with the thread's id, not the
    process's: only the main thread's calls fired. There the link takes every
    process (0) and the BPF program keeps the target's alone: it filters by
    tgid already (CORAL_FILTER_TGID, bpf/coral_common.h)."""
    found = re.match(r"(\d+)\.(\d+)", release)
    version = (int(found[1]), int(found[2])) if found else (0, 0)
    return (pid or 0) if version >= (6, 10) else 0
