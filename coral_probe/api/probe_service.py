"""ProbeService over the agent's Store: a `coral probe attach` that runs while
the agent holds the DuckDB file attaches and drains its probes itself and
records its session here (api/remote_store.py is the other end).

Batches arrive as the command's ring consumer decoded them (numpy columns as
raw little-endian bytes) and go through a ProbeEventWriter like the command's
own. Every batch is checked whole before any of it is kept: a column missing,
of another dtype or length, or a code past its name table is INVALID_ARGUMENT,
never a row the INSERT would refuse (one failed write fails the agent's store).
A stream cut before its end (the command killed, the agent stopping) keeps the
rows it sent and ends the session, its counts unknown.

Begin returns "id.secret": appends and the end need the secret, so knowing a
session's id (it is in probe_sessions) does not let another client write into
it. At most MAX_OPEN_SESSIONS are open; one left without an events stream for
NO_STREAM_TIMEOUT_S (its command gone before streaming, or never ending it) is
ended by the agent. Every TEND_EVERY_S the open sessions' rows that waited
FLUSH_AFTER_S are written, as the command's own loop does for a local session:
a quiet session's rows reach queries and triggers, and survive a SIGKILL."""

from __future__ import annotations

import hmac
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from ..accounting import Accounting
from ..errors import CoralError, first_line
from ..services import ServiceMap, check_name
from ..store import ProbeEventWriter, ProbeSessionInfo, Store
from ..terminal import safe_text
from . import pb, pb_grpc
from .status import abort

MAX_ARGS = 6  # CORAL_MAX_ARGS, bpf/coral_event.h
_INT64_MAX = 2**63 - 1  # the counts are BIGINT
CUT_REASON = "recording cut: the command or the agent went away"
# A closed stream is told from a cut one within this (_cut).
CUT_NOTICE_S = 0.1
# RecordProbeEvents metadata naming the stream's session ("id.secret").
SESSION_METADATA = "coral-probe-session"
# Each holds a writer and up to a row group of buffered rows.
MAX_OPEN_SESSIONS = 64
NO_STREAM_TIMEOUT_S = 30.0
NO_STREAM_REASON = f"no events stream for {NO_STREAM_TIMEOUT_S:.0f} s: ended by the agent"
TEND_EVERY_S = 1.0

# The columns ProbeEventWriter reads and their numpy dtypes (native/src/batch.rs).
_DTYPES = {"ts_ns": "int64", "probe_id": "uint32", "pid": "uint32", "tid": "uint32", "comm": "uint32",
           "duration_ns": "int64", "has_return": "bool", "has_value": "bool", "ret": "int64"}


def column_dtypes(nargs: int) -> dict[str, str]:
    """The columns of a session's batches, by name: their numpy dtypes."""
    return {**_DTYPES, **{f"arg{i}": "int64" for i in range(nargs)}}


class InvalidBatch(ValueError):
    pass


@dataclass
class _Session:
    info: ProbeSessionInfo
    writer: ProbeEventWriter
    dtypes: dict[str, str]
    secret: str
    # Appends and the end take turns: no row lands after the session's last flush.
    lock: threading.Lock = field(default_factory=threading.Lock)
    comm_names: list[str] = field(default_factory=list)
    ended: bool = False
    # Under ProbeServicer._lock: its open events streams, and since when it has had none.
    streams: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    flush_failure_said: bool = False


class _Batch:
    """What ProbeEventWriter.append reads of a native batch."""

    def __init__(self, rows: int, comm_names: list[str]):
        self.rows, self.comm_names = rows, comm_names

    def __len__(self) -> int:
        return self.rows


class ProbeServicer(pb_grpc.ProbeServiceServicer):
    def __init__(self, store: Store, *, log: Callable[[str], None] | None = None,
                 services: ServiceMap = ServiceMap()):
        self.store = store
        self.services = services  # the agent's --service names, for sessions attached without one
        self._log = log or (lambda line: print(f"coral agent: {line}", file=sys.stderr, flush=True))
        self._sessions: dict[str, _Session] = {}
        self._beginning = 0  # Begin calls past the cap check, not in _sessions yet
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._tender = threading.Thread(target=self._tend, name="coral-probe-sessions", daemon=True)
        self._tender.start()

    def close(self) -> None:
        """Ends the sessions still open, once the server has stopped (their
        streams were cut): their rows are kept, their counts unknown."""
        self._closing.set()
        self._tender.join()
        with self._lock:
            open_ids = list(self._sessions)
        for session_id in open_ids:
            self._end(session_id, None, CUT_REASON)

    def BeginProbeSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            info = _session_info(request, self.services)
        except InvalidBatch as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        with self._lock:
            full = len(self._sessions) + self._beginning >= MAX_OPEN_SESSIONS
            if not full:
                self._beginning += 1
        if full:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{MAX_OPEN_SESSIONS} probe sessions open in this agent already: end one first")
        try:
            session_id = self.store.begin_probe_session(info)
            writer = self.store.probe_event_writer(session_id, info, any_thread=True)
            session = _Session(info, writer, column_dtypes(info.nargs), secrets.token_urlsafe(24))
            with self._lock:
                self._sessions[session_id] = session
        except CoralError as e:
            abort(context, e, default=grpc.StatusCode.FAILED_PRECONDITION)
        finally:
            with self._lock:
                self._beginning -= 1
        self._log(f"probe session {session_id} begun: {safe_text(info.probe_type)} in {safe_text(info.target)}"
                  f"{f' (pid {info.pid})' if info.pid else ''}, {len(info.functions)} functions")
        return pb.BeginProbeSessionResponse(session_id=f"{session_id}.{session.secret}")

    def RecordProbeEvents(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
        # Named up front, the session is ended even when the stream is cut before its first batch.
        token: str | None = dict(context.invocation_metadata()).get(SESSION_METADATA)
        opened = self._open(token, context, streaming=True) if token is not None else None
        received = 0
        try:
            for request in request_iterator:
                if opened is None:
                    token = request.session_id
                    opened = self._open(token, context, streaming=True)
                elif request.session_id != token:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"one session per stream: {opened[0]}, then {request.session_id.split('.')[0]}")
                received += self._record(*opened, request, context)
        except grpc.RpcError:
            pass  # cut: said below
        finally:
            if opened is not None:
                with self._lock:
                    opened[1].streams -= 1
                    opened[1].idle_since = time.monotonic()
        if opened is not None and _cut(context):
            self._end(opened[0], None, CUT_REASON)
        return pb.RecordProbeEventsResponse(rows=received)

    def EndProbeSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        counts = (request.hits, request.delivered, request.lost, request.filtered, request.unpaired,
                  request.too_deep, request.in_flight_at_stop, request.in_flight_at_attach)
        if any(n > _INT64_MAX for n in counts):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a count past 2^63-1")
        if request.too_deep + request.unpaired > request.lost:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "lost must include too_deep and unpaired")
        accounting = Accounting(
            hits=request.hits, delivered=request.delivered,
            lost_ring=request.lost - request.too_deep - request.unpaired, too_deep=request.too_deep,
            unwound=request.unpaired, filtered=request.filtered,
            in_flight_at_attach=request.in_flight_at_attach, in_flight_at_stop=request.in_flight_at_stop)
        session_id, _ = self._open(request.session_id, context)
        rows = self._end(session_id, accounting, request.stop_reason or "unknown", context)
        return pb.EndProbeSessionResponse(rows=rows)

    def _open(self, token: str, context: grpc.ServicerContext, *, streaming: bool = False) -> tuple[str, _Session]:
        """The open session `token` ("id.secret") names, counted as streaming if so."""
        session_id, _, secret = token.partition(".")
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and hmac.compare_digest(secret.encode(), session.secret.encode()):
                if streaming:
                    session.streams += 1
                return session_id, session
        if session is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no probe session {session_id!r} open in this agent")
        context.abort(grpc.StatusCode.PERMISSION_DENIED,
                      f"probe session {session_id!r}: not its secret (BeginProbeSession returns id.secret)")
        raise AssertionError("unreachable")  # context.abort raises

    def _record(self, session_id: str, session: _Session, request: Any, context: grpc.ServicerContext) -> int:
        with session.lock:
            if session.ended:
                context.abort(grpc.StatusCode.NOT_FOUND, f"probe session {session_id} has ended")
            try:
                cols = _columns(request, session)
            except InvalidBatch as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad batch: {e}")
            comm_names = list(request.comm_names)
            try:
                session.writer.append(_Batch(request.rows, comm_names), cols)
            except CoralError as e:
                abort(context, e, default=grpc.StatusCode.FAILED_PRECONDITION)
            session.comm_names = comm_names
        return request.rows

    def _end(self, session_id: str, accounting: Accounting | None, stop_reason: str,
             context: grpc.ServicerContext | None = None) -> int:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            if context is not None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no probe session {session_id!r} open in this agent")
            return 0
        return self._finish(session_id, session, accounting, stop_reason, context)

    def _finish(self, session_id: str, session: _Session, accounting: Accounting | None, stop_reason: str,
                context: grpc.ServicerContext | None = None) -> int:
        with session.lock:
            session.ended = True
            try:
                self.store.end_probe_session(session_id, accounting, stop_reason)
            except CoralError as e:
                self._log(f"probe session {session_id} not ended: {safe_text(first_line(e))}")
                if context is not None:
                    abort(context, e, default=grpc.StatusCode.FAILED_PRECONDITION)
                return session.writer.rows
            self._log(f"probe session {session_id} ended: {safe_text(stop_reason)} ({session.writer.rows} rows)")
            return session.writer.rows

    def _tend(self) -> None:
        """Ends the sessions left without an events stream; writes the rows
        that waited their time in the open ones."""
        while not self._closing.wait(TEND_EVERY_S):
            now = time.monotonic()
            with self._lock:  # taken out here: no stream can open on them any more
                idle = {session_id: session for session_id, session in self._sessions.items()
                        if not session.streams and now - session.idle_since >= NO_STREAM_TIMEOUT_S}
                for session_id in idle:
                    del self._sessions[session_id]
                sessions = list(self._sessions.items())
            for session_id, session in idle.items():
                self._finish(session_id, session, None, NO_STREAM_REASON)
            for session_id, session in sessions:
                self._flush_due(session_id, session)

    def _flush_due(self, session_id: str, session: _Session) -> None:
        try:
            session.writer.flush_due()
        except CoralError as e:  # the store failed: the session's next append or its end says so
            if not session.flush_failure_said:
                session.flush_failure_said = True
                self._log(f"probe session {session_id}: rows not written: {safe_text(first_line(e))}")


def _cut(context: grpc.ServicerContext) -> bool:
    """Whether the stream was cut (the client killed, the agent stopping)
    rather than closed by its client. A cut may first look like a close (gRPC
    reads the end of the stream before the cancellation): a cut RPC ends at
    once, a closed one waits for its response, so its end is waited for a
    moment. A cut noticed later is ended by close()."""
    terminated = threading.Event()
    if context.is_active() and context.add_callback(terminated.set):
        terminated.wait(CUT_NOTICE_S)
    return not context.is_active()


def _session_info(request: Any, services: ServiceMap) -> ProbeSessionInfo:
    if not request.probe_type or not request.target:
        raise InvalidBatch("probe_type and target are required")
    if not request.functions:
        raise InvalidBatch("no functions")
    if not 0 <= request.nargs <= MAX_ARGS:
        raise InvalidBatch(f"nargs {request.nargs}: 0 to {MAX_ARGS}")
    if request.pid < 0:
        raise InvalidBatch(f"pid {request.pid}: 0 (none) or a process id")
    try:
        options = json.loads(request.options_json or "{}")
    except ValueError:
        raise InvalidBatch("options_json is not JSON") from None
    if not isinstance(options, dict):
        raise InvalidBatch("options_json is not a JSON object")
    if request.service:
        try:
            check_name(request.service, "service")
        except CoralError as e:
            raise InvalidBatch(str(e)) from None
    return ProbeSessionInfo(probe_type=request.probe_type, target=request.target, pid=request.pid or None,
                            functions=list(request.functions), nargs=request.nargs, options=options,
                            service=services.session_service(request.service, request.target, request.pid or None,
                                                             binary=request.binary or None))


def _columns(request: Any, session: _Session) -> dict[str, np.ndarray]:
    """The batch's columns as numpy arrays, or InvalidBatch saying what is wrong."""
    names = set(request.columns)
    if names != set(session.dtypes):
        missing, extra = sorted(set(session.dtypes) - names), sorted(names - set(session.dtypes))
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(extra)}"] if extra else [])
        raise InvalidBatch("columns: " + "; ".join(problems))
    rows = request.rows
    cols = {}
    for name, dtype in session.dtypes.items():
        column = request.columns[name]
        if column.dtype != dtype:
            raise InvalidBatch(f"column {name} is {column.dtype or 'untyped'}, expected {dtype}")
        kind = np.dtype(dtype).newbyteorder("<")
        if len(column.data) != rows * kind.itemsize:
            raise InvalidBatch(f"column {name} has {len(column.data)} bytes for {rows} rows of {dtype}")
        cols[name] = np.frombuffer(column.data, dtype=kind)
        if dtype == "bool":  # a byte other than 0 or 1 is not a numpy bool DuckDB can read
            cols[name] = cols[name].view(np.uint8) != 0
    if rows and (int(cols["ts_ns"].min()) < 0 or int(cols["ts_ns"].max()) >= _INT64_MAX):
        raise InvalidBatch("ts_ns before 1970 or past 2262 (nanoseconds since the epoch)")
    if rows and int(cols["probe_id"].max()) >= len(session.info.functions):
        raise InvalidBatch(f"probe_id past the session's {len(session.info.functions)} functions")
    comm_names = request.comm_names
    if rows and int(cols["comm"].max()) >= len(comm_names):
        raise InvalidBatch(f"comm code past the batch's {len(comm_names)} comm_names")
    # The writer names every pending row by the newest batch's table: it may only grow.
    if list(comm_names[:len(session.comm_names)]) != session.comm_names:
        raise InvalidBatch("comm_names must extend the previous batch's")
    return cols

