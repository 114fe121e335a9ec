"""Probe subscriptions of scripts. Scripts asking for the same probe share
one attachment (and its ring consumer): each is a subscriber of the Rust
fan-out. The probe is attached for the first subscriber and detached after
the last; a probe the CLI session attached itself is joined, not owned."""

import collections
import fcntl
import itertools
import logging
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import CoralError, ResourceExhausted
from ..gen.coral.sdk.v1 import sdk_pb2 as pb
from ..services import ServiceMap
from .policy import ProbePolicy

if TYPE_CHECKING:  # probing modules load on the first subscribe, not at start-up
    from ..attach import Attachment
    from ..plan import Plan, ProbeOptions

# Events a script may have waiting before its newest ones are dropped (counted).
MAX_QUEUED_EVENTS = 1 << 20
STREAM_RING_PAGES = 4096  # 16 MiB: ~150k events of headroom per probe
# Each subscription holds a socket, a queue and a writer thread, and a new
# probe a 16 MiB ring and its compiled program (~50 MB).
MAX_SUBSCRIPTIONS_PER_SCRIPT = 8
MAX_SUBSCRIPTIONS = 32
# While a probe stops, a stream whose script reads nothing for this long is
# cut off: its writer is blocked on the full socket, and the end of every
# other stream of the probe waits for that writer.
STALLED_STREAM_S = 5.0
MAX_ENDED_REMEMBERED = 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentTarget:
    binary: str | None = None
    pid: int | None = None
    # The executable of a command coral started: `pid` is a shell held before
    # exec'ing it, so library names resolve from this, never from pid's maps.
    program: str | None = None


def _unread_bytes(sock: socket.socket) -> int | None:
    """Bytes written to `sock` its peer has not read yet; None once it is closed."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    except (OSError, ValueError):
        return None


class _StallWatch:
    """Which streams made no progress (their unread bytes did not change) for STALLED_STREAM_S."""

    def __init__(self):
        self._seen: dict[int, tuple[int | None, float]] = {}

    def stalled(self, streams: dict[int, socket.socket]) -> list[socket.socket]:
        now, out = time.monotonic(), []
        for sid, sock in streams.items():
            unread = _unread_bytes(sock)
            last = self._seen.get(sid)
            if last is None or last[0] != unread:
                self._seen[sid] = (unread, now)
            elif unread and now - last[1] >= STALLED_STREAM_S:
                out.append(sock)
        return out


@dataclass
class LiveProbe:
    plan: "Plan"
    consumer: object  # coral_probe._native.RingConsumer
    attachment: "Attachment | None"  # None when the CLI session owns it
    subscribers: set[int] = field(default_factory=set)
    streams: dict[int, socket.socket] = field(default_factory=dict)  # the sockets the fan-out writes to
    _stop_lock: threading.Lock = field(default_factory=threading.Lock)

    owned: bool = True
    store: object | None = None  # where its probe_sessions row is (owned probes)
    session_id: str | None = None

    def stop(self, reason: str) -> None:
        """Stop counting, detach, let the consumer drain and send end frames,
        account for every hit in probe_sessions, free the maps."""
        with self._stop_lock:  # the last unsubscribe and end_all may race
            if self.attachment is None:
                return
            self.attachment.stop_counting()
            self.attachment.detach_probes()
            counters = self.attachment.counters()
            self.consumer.stop()
            watch = _StallWatch()
            while not self.consumer.closed:
                self.consumer.poll(50)
                for sock in watch.stalled(dict(self.streams)):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)  # the blocked writer fails and the stream ends
                    except OSError:
                        pass
            self.attachment.detach()
            self.attachment = None
            if self.session_id is not None:
                from ..accounting import Accounting

                try:
                    self.store.end_probe_session(self.session_id, Accounting.of(
                        counters, self.consumer.stats()["events"]), reason)
                except CoralError as e:  # the store failed: the executor stops the runs and says why
                    log.warning("coral: probe session %s not recorded: %s", self.session_id, e)


def _options(req: pb.Subscribe) -> "ProbeOptions":
    from ..plan import ProbeOptions

    c = req.config
    return ProbeOptions(with_return=req.kind == pb.PROBE_KIND_URETPROBE or not c.no_return, nargs=c.args,
                        min_duration_ns=c.min_duration_ns, sample=max(1, c.sample_rate),
                        ringbuf_pages=STREAM_RING_PAGES)


class Subscriptions:
    def __init__(self, store, max_queued_events: int = MAX_QUEUED_EVENTS, policy: ProbePolicy = ProbePolicy()):
        self.store = store
        self.max_queued_events = max_queued_events
        self.policy = policy
        self.services = ServiceMap()  # `coral agent start --service`s (api/agent_main.py sets them)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._probes: dict[tuple, LiveProbe] = {}
        self._by_id: dict[int, LiveProbe] = {}
        self._adopted: dict[str, LiveProbe] = {}
        self._streaming: set[int] = set()
        self._owners: dict[int, str] = {}  # subscription id -> the execution that opened it
        # Executions whose streams were ended: a stream they open later ends at
        # once. The newest only: an execution long over opens nothing.
        self._ended: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.first_subscription = threading.Event()

    def adopt(self, plan: "Plan", consumer) -> None:
        """Scripts asking for these functions join the CLI session's probe."""
        probe = LiveProbe(plan, consumer, None, owned=False)
        for name in plan.names:
            self._adopted[name] = probe

    def open(self, req: pb.Subscribe, target: AgentTarget, *, owner: str) -> tuple[int, LiveProbe]:
        """`owner` (an execution id) is what the per-script cap counts."""
        if not req.name:
            raise CoralError("subscribe needs a function or tracepoint name")
        self.policy.check_subscribe(req, target)
        with self._lock:
            if len(self._by_id) >= MAX_SUBSCRIPTIONS:
                raise ResourceExhausted(f"the agent has {MAX_SUBSCRIPTIONS} subscriptions open (the limit); "
                                        "close a stream first")
            if sum(o == owner for o in self._owners.values()) >= MAX_SUBSCRIPTIONS_PER_SCRIPT:
                raise ResourceExhausted(f"this script has {MAX_SUBSCRIPTIONS_PER_SCRIPT} subscriptions open "
                                        "(the limit); close a stream (break out of its loop) first")
            probe = self._adopted.get(req.name) if req.kind in (pb.PROBE_KIND_UPROBE, pb.PROBE_KIND_URETPROBE) else None
            if req.kind == pb.PROBE_KIND_USDT:  # a marker the CLI session probes (`--usdt M --script`)
                probe = self._adopted.get(req.name)
            if probe is not None and (probe.plan.probe_type == "usdt") != (req.kind == pb.PROBE_KIND_USDT):
                probe = None
            if probe is None:
                key = self._key(req, target)
                probe = self._probes.get(key)
                if probe is None:
                    probe = self._start(req, target)
                    self._record(probe, req, target, owner)
                    self._probes[key] = probe
            sid = next(self._ids)
            probe.subscribers.add(sid)
            self._by_id[sid] = probe
            self._owners[sid] = owner
            return sid, probe

    def stream(self, sid: int, conn: socket.socket) -> None:
        """Hands the subscriber's socket to the Rust fan-out (after the reply)."""
        probe = self._by_id[sid]
        probe.consumer.add_subscriber(sid, conn.fileno(), self.max_queued_events)
        probe.streams[sid] = conn
        with self._lock:
            self._streaming.add(sid)
            ended = self._owners.get(sid) in self._ended
        self.first_subscription.set()
        if ended:  # opened while its run was being stopped: its loop ends like the others
            self.close(sid)

    def wait_for_first(self, give_up: threading.Event, timeout_s: float,
                       also_give_up: threading.Event | None = None) -> None:
        """Until a first stream is live, either event is set, or `timeout_s` passed."""
        deadline = time.monotonic() + timeout_s
        while not self.first_subscription.wait(0.05):
            if give_up.is_set() or (also_give_up and also_give_up.is_set()) or time.monotonic() > deadline:
                return

    def close(self, sid: int) -> None:
        with self._lock:
            probe = self._by_id.pop(sid, None)
            self._streaming.discard(sid)
            self._owners.pop(sid, None)
            if probe is None:
                return
            probe.subscribers.discard(sid)
            probe.streams.pop(sid, None)
            last = probe.owned and not probe.subscribers
            if last:
                self._probes = {k: p for k, p in self._probes.items() if p is not probe}
        probe.consumer.remove_subscriber(sid)
        if last:
            probe.stop("closed")

    def end_all(self, reason: str) -> None:
        """The target is gone: every stream gets its last events, then its end."""
        with self._lock:
            owned = list({id(p): p for p in self._probes.values()}.values())
            self._probes.clear()
        self._stop_side_by_side(owned, reason)

    def end_streams_of(self, owner: str) -> None:
        """One execution's streams end (its time is up, it was stopped): a
        probe only it uses stops first, so its last events still reach it;
        from a shared probe it gets what was queued, then its end frame."""
        with self._lock:
            self._ended[owner] = None
            while len(self._ended) > MAX_ENDED_REMEMBERED:
                self._ended.popitem(last=False)
            sids = {sid for sid, o in self._owners.items() if o == owner}
            alone = {id(p): p for sid in sids if (p := self._by_id[sid]).owned and p.subscribers <= sids}
            self._probes = {k: p for k, p in self._probes.items() if id(p) not in alone}
        self._stop_side_by_side(list(alone.values()), "script stopped")
        for sid in sids:
            self.close(sid)

    @staticmethod
    def _stop_side_by_side(probes: list[LiveProbe], reason: str) -> None:
        # A probe whose stream is slow to end delays no other.
        stops = [threading.Thread(target=p.stop, args=(reason,), name="coral-probe-stop", daemon=True)
                 for p in probes]
        for t in stops:
            t.start()
        for t in stops:
            t.join()

    def _record(self, probe: LiveProbe, req: pb.Subscribe, target: AgentTarget, owner: str) -> None:
        """Its probe_sessions row, like a CLI session's: counts at its stop."""
        from ..store import ProbeSessionInfo

        c = req.config
        pid = req.pid or target.pid
        info = ProbeSessionInfo(probe_type=probe.plan.probe_type, target=probe.plan.target,
                                pid=pid, functions=probe.plan.names, nargs=probe.plan.nargs,
                                options={"ret": not c.no_return, "args": c.args,
                                         "min_duration_ns": c.min_duration_ns, "sample": max(1, c.sample_rate)},
                                service=self.services.session_service(None, probe.plan.target, pid))
        try:
            probe.session_id = self.store.begin_probe_session(info, execution_id=owner)
        except BaseException:
            probe.stop("not recorded")
            raise
        probe.store = self.store

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
        from ..targets import resolve_binary, resolve_target

        opts = _options(req)
        pid = req.pid or target.pid
        attachment = None
        if req.kind == pb.PROBE_KIND_TRACEPOINT:
            plan = plan_tracepoints([req.name], opts, pid)
        elif req.kind == pb.PROBE_KIND_KPROBE:
            plan, attachment = load_kernel_functions([req.name], opts, pid)
        elif req.kind in (pb.PROBE_KIND_UPROBE, pb.PROBE_KIND_URETPROBE):
            # A script's own pid is another process: the command's program says nothing of it.
            program = target.program if pid == target.pid else None
            if req.binary:
                resolved = resolve_binary(req.binary, pid, program=program)
            else:
                # No file named: the target's program and then its libraries (function_lookup).
                resolved = resolve_target(target.binary, pid, program)
            if resolved is None:
                raise CoralError("no target for this probe: start the script with --pid, --binary or "
                                 "-- COMMAND, or pass { binary } or { pid }")
            plan = plan_functions(resolved, [req.name], opts)
        elif req.kind == pb.PROBE_KIND_USDT:
            from ..usdt import plan_usdt

            # Without a file named: the command's program and its libraries, or every file of the process.
            program = target.program if pid == target.pid else None
            binary = req.binary or (target.binary if target.binary != program else None)
            if not (binary or program or pid):
                raise CoralError("no target for this probe: start the script with --pid, --binary or "
                                 "-- COMMAND, or pass { binary } or { pid }")
            resolved = resolve_binary(binary, pid, program=program) if binary else None
            plan = plan_usdt([req.name], opts, binary=resolved, pid=pid, program=None if resolved else program)
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
