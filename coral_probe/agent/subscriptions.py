"""Probe subscriptions of scripts. Scripts asking for the same probe share
one attachment (and its ring consumer): each is a subscriber of the Rust
fan-out. The probe is attached for the first subscriber and detached after
the last; a probe the CLI session attached itself is joined, not owned."""

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import CoralError
from ..gen.coral.sdk.v1 import sdk_pb2 as pb

if TYPE_CHECKING:  # probing modules load on the first subscribe, not at start-up
    from ..attach import Attachment
    from ..plan import Plan, ProbeOptions

# Events a script may have waiting before its newest ones are dropped (counted).
MAX_QUEUED_EVENTS = 1 << 20
STREAM_RING_PAGES = 4096  # 16 MiB: ~150k events of headroom per probe


@dataclass(frozen=True)
class AgentTarget:
    binary: str | None = None
    pid: int | None = None


@dataclass
class LiveProbe:
    plan: "Plan"
    consumer: object  # coral_probe._native.RingConsumer
    attachment: "Attachment | None"  # None when the CLI session owns it
    subscribers: set[int] = field(default_factory=set)
    _stop_lock: threading.Lock = field(default_factory=threading.Lock)

    owned: bool = True

    def stop(self) -> None:
        """Detach, let the consumer drain and send end frames, free the maps."""
        with self._stop_lock:  # the last unsubscribe and end_all may race
            if self.attachment is None:
                return
            self.attachment.detach_probes()
            self.consumer.stop()
            while not self.consumer.closed:
                self.consumer.poll(50)
            self.attachment.detach()
            self.attachment = None


def _options(req: pb.Subscribe) -> "ProbeOptions":
    from ..plan import ProbeOptions

    c = req.config
    return ProbeOptions(with_return=req.kind == pb.PROBE_KIND_URETPROBE or not c.no_return, nargs=c.args,
                        min_duration_ns=c.min_duration_ns, sample=max(1, c.sample_rate),
                        ringbuf_pages=STREAM_RING_PAGES)


class Subscriptions:
    def __init__(self, max_queued_events: int = MAX_QUEUED_EVENTS):
        self.max_queued_events = max_queued_events
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._probes: dict[tuple, LiveProbe] = {}
        self._by_id: dict[int, LiveProbe] = {}
        self._adopted: dict[str, LiveProbe] = {}
        self._streaming: set[int] = set()
        self.first_subscription = threading.Event()

    def adopt(self, plan: "Plan", consumer) -> None:
        """Scripts asking for these functions join the CLI session's probe."""
        probe = LiveProbe(plan, consumer, None, owned=False)
        for name in plan.names:
            self._adopted[name] = probe

    def open(self, req: pb.Subscribe, target: AgentTarget) -> tuple[int, LiveProbe]:
        if not req.name:
            raise CoralError("subscribe needs a function or tracepoint name")
        with self._lock:
            probe = self._adopted.get(req.name) if req.kind in (pb.PROBE_KIND_UPROBE, pb.PROBE_KIND_URETPROBE) else None
            if probe is None:
                key = self._key(req, target)
                probe = self._probes.get(key)
                if probe is None:
                    probe = self._start(req, target)
                    self._probes[key] = probe
            sid = next(self._ids)
            probe.subscribers.add(sid)
            self._by_id[sid] = probe
            return sid, probe

    def stream(self, sid: int, fd: int) -> None:
        """Hands the subscriber's socket to the Rust fan-out (after the reply)."""
        self._by_id[sid].consumer.add_subscriber(sid, fd, self.max_queued_events)
        with self._lock:
            self._streaming.add(sid)
        self.first_subscription.set()

    def wait_for_first(self, give_up: threading.Event, timeout_s: float) -> None:
        """Until a first stream is live, `give_up` is set, or `timeout_s` passed."""
        deadline = time.monotonic() + timeout_s
        while not self.first_subscription.wait(0.05):
            if give_up.is_set() or time.monotonic() > deadline:
                return

    def close(self, sid: int) -> None:
        with self._lock:
            probe = self._by_id.pop(sid, None)
            self._streaming.discard(sid)
            if probe is None:
                return
            probe.subscribers.discard(sid)
            last = probe.owned and not probe.subscribers
            if last:
                self._probes = {k: p for k, p in self._probes.items() if p is not probe}
        probe.consumer.remove_subscriber(sid)
        if last:
            probe.stop()

    def end_all(self) -> None:
        """The target is gone: every stream gets its last events, then its end."""
        with self._lock:
            owned = list({id(p): p for p in self._probes.values()}.values())
            self._probes.clear()
        for probe in owned:
            probe.stop()

    def active_probes(self) -> int:
        with self._lock:
            return len(self._probes)

    def subscriber_count(self) -> int:
        """Subscribers whose stream is live (their socket is with the fan-out)."""
        with self._lock:
            return len(self._streaming)

    @staticmethod
    def _key(req: pb.Subscribe, target: AgentTarget) -> tuple:
        c = req.config
        return (req.kind, req.name, req.binary or target.binary, req.pid or target.pid,
                c.args, c.no_return, c.min_duration_ns, c.sample_rate)

    @staticmethod
    def _start(req: pb.Subscribe, target: AgentTarget) -> LiveProbe:
        from .. import _native
        from ..clock import monotonic_to_epoch_offset_ns
        from ..plan import load_kernel_functions, plan_functions, plan_tracepoints
        from ..targets import resolve_binary, resolve_pid

        opts = _options(req)
        pid = req.pid or target.pid
        attachment = None
        if req.kind == pb.PROBE_KIND_TRACEPOINT:
            plan = plan_tracepoints([req.name], opts, pid)
        elif req.kind == pb.PROBE_KIND_KPROBE:
            plan, attachment = load_kernel_functions([req.name], opts, pid)
        elif req.kind in (pb.PROBE_KIND_UPROBE, pb.PROBE_KIND_URETPROBE):
            binary = req.binary or target.binary
            if binary:
                resolved = resolve_binary(binary, pid)
            elif pid:
                resolved = resolve_pid(pid)
            else:
                raise CoralError("no target for this probe: start the script with --pid, --binary or "
                                 "-- COMMAND, or pass { binary } or { pid }")
            plan = plan_functions(resolved, [req.name], opts)
        else:
            raise CoralError(f"unknown probe kind {req.kind}")
        if attachment is None:
            attachment = plan.load()
        try:
            consumer = _native.RingConsumer(attachment.ringbuf_fd, plan.names, [plan.nargs] * len(plan.names),
                                            monotonic_to_epoch_offset_ns(), to_python=False)
        except BaseException:
            attachment.detach()
            raise
        return LiveProbe(plan, consumer, attachment)
