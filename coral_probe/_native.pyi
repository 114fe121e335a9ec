"""Type stubs of coral_probe._native, the Rust data plane (native/src).
Checked against the built module by tests/test_native_stub.py (mypy stubtest)."""

from collections.abc import Sequence
from typing import final

import numpy as np
import numpy.typing as npt

__all__ = ["COUNTER_NAMES", "EVENT_SIZE", "KERNEL_REFUSES", "AttachPoints", "Batch", "NativeError", "RingConsumer", "attach_points",
           "entered_between",
           "confine_self", "demangle", "drain_ring", "landlock_abi", "page_out_libraries", "ret_offsets"]

EVENT_SIZE: int
COUNTER_NAMES: list[str]
KERNEL_REFUSES: str  # AttachPoints.reason when the first instruction cannot take a uprobe

class NativeError(Exception):
    """An error in coral's native core."""

@final
class Batch:
    """Decoded events of one batch, as columns."""

    def __len__(self) -> int: ...
    def columns(self) -> dict[str, npt.NDArray[np.generic]]:
        """Column name -> numpy array; `comm` holds codes into `comm_names`."""
    @property
    def comm_names(self) -> list[str]: ...
    def jsonl(self) -> bytes:
        """The events as JSON lines (one object per event, trailing newline)."""

@final
class RingConsumer:
    """Drains a BPF ring buffer on a thread of its own."""

    def __new__(
        cls,
        map_fd: int,
        probe_names: Sequence[str],
        nargs: Sequence[int],
        wall_offset_ns: int,
        batch_max: int = 65536,
        flush_ms: int = 50,
        queue_depth: int = 64,
        poll_ms: int = 1,
        to_python: bool = True,
    ) -> RingConsumer: ...
    def poll(self, timeout_ms: int) -> Batch | None:
        """The next batch, or None after `timeout_ms` (or when closed)."""
    def stop(self) -> None:
        """Asks the thread to drain what is left and finish; keep polling until `closed`."""
    @property
    def closed(self) -> bool: ...
    def add_subscriber(self, subscription_id: int, fd: int, max_queued_events: int = ...) -> None:
        """Streams EventBatch frames to a connected socket from now on."""
    def remove_subscriber(self, subscription_id: int) -> bool:
        """Ends a subscriber's stream (end frame, then the writer exits)."""
    def subscriber_stats(self, subscription_id: int) -> tuple[int, int] | None:
        """`(sent, lost)` events for a subscriber."""
    def stats(self) -> dict[str, int | None]:
        """Events decoded so far, and latency percentiles over all of them."""

def drain_ring(map_fd: int, wall_offset_ns: int) -> int:
    """Decodes everything already in the ring buffer; returns the event count."""

def demangle(names: Sequence[str]) -> list[tuple[str, str] | None]:
    """`(full, without parameters)` for each name; None where it is not C++."""

def ret_offsets(code: bytes, address: int) -> list[int]:
    """Offsets of every RET instruction in a function's machine code."""

@final
class AttachPoints:
    """Where a function's uprobes go (native/src/symbols.rs attach_points)."""

    @property
    def entry(self) -> int:
        """Address of the entry uprobe."""
    @property
    def ret(self) -> int | None:
        """Address of the uretprobe; None entry-only and for Go (RET probes)."""
    @property
    def skipped(self) -> list[str]:
        """Mnemonics of the instructions the probe moved past."""
    @property
    def reason(self) -> str:
        """"moved", or why the probe stays on the first instruction."""

def attach_points(code: bytes, address: int, go_abi: bool, with_return: bool) -> AttachPoints:
    """Where a function's entry uprobe (and uretprobe) are cheapest: past
    instructions the kernel would single-step, onto one it emulates."""

def entered_between(code: bytes, address: int, ranges: list[tuple[int, int]]) -> list[bool]:
    """For each (start, entry): whether a direct branch anywhere in `code`, an
    executable section at `address`, lands in (start, entry]."""

def page_out_libraries(needles: Sequence[str]) -> int:
    """Reclaims resident pages of mapped libraries matching `needles`; bytes advised."""

def confine_self(uid: int, gid: int, read_exec: Sequence[str], read: Sequence[str],
                 read_write: Sequence[str]) -> str:
    """Drops this process to `uid`/`gid` with no capabilities, sets no_new_privs
    and enforces Landlock: reads only under `read_exec` (and may execute
    there), `read` and `read_write`, writes only under `read_write`, no TCP.
    Returns "full", "partial" or "none"."""

def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0 when Landlock is off)."""
