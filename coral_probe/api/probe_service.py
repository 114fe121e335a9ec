"""ProbeService over the agent's Store: a `coral probe attach` that runs while
the agent holds the DuckDB file attaches and drains its probes itself and
records its session here (api/remote_store.py is the other end).

Batches arrive as the command's ring consumer decoded them (numpy columns as
raw little-endian bytes) and go through a ProbeEventWriter like the command's
own. Every batch is checked whole before any of it is kept: a column missing,
of another dtype or length, or a code past its name table is INVALID_ARGUMENT,
never a row the INSERT would refuse (one failed write fails the agent's store).
A stream cut before its end (the command killed, the agent stopping) keeps the
rows it sent and ends the session, its counts unknown."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from ..accounting import Accounting
from ..errors import CoralError
from ..store import ProbeEventWriter, ProbeSessionInfo, Store
from . import pb, pb_grpc

MAX_ARGS = 6  # CORAL_MAX_ARGS, bpf/coral_event.h
_INT64_MAX = 2**63 - 1  # the counts are BIGINT
CUT_REASON = "recording cut: the command or the agent went away"
# A closed stream is told from a cut one within this (_cut).
CUT_NOTICE_S = 0.1
# RecordProbeEvents metadata naming the stream's session.
SESSION_METADATA = "coral-probe-session"

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
    # Appends and the end take turns: no row lands after the session's last flush.
    lock: threading.Lock = field(default_factory=threading.Lock)
    comm_names: list[str] = field(default_factory=list)
    ended: bool = False


class _Batch:
    """What ProbeEventWriter.append reads of a native batch."""

    def __init__(self, rows: int, comm_names: list[str]):
        self.rows, self.comm_names = rows, comm_names

    def __len__(self) -> int:
        return self.rows


class ProbeServicer(pb_grpc.ProbeServiceServicer):
    def __init__(self, store: Store, *, log: Callable[[str], None] | None = None):
        self.store = store
        self._log = log or (lambda line: print(f"coral agent: {line}", file=sys.stderr, flush=True))
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Ends the sessions still open, once the server has stopped (their
        streams were cut): their rows are kept, their counts unknown."""
        with self._lock:
            open_ids = list(self._sessions)
        for session_id in open_ids:
            self._end(session_id, None, CUT_REASON)

    def BeginProbeSession(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            info = _session_info(request)
        except InvalidBatch as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        try:
            session_id = self.store.begin_probe_session(info)
            writer = self.store.probe_event_writer(session_id, info, any_thread=True)
        except CoralError as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _one_line(e))
        with self._lock:
            self._sessions[session_id] = _Session(info, writer, column_dtypes(info.nargs))
        self._log(f"probe session {session_id} begun: {info.probe_type} in {info.target}"
                  f"{f' (pid {info.pid})' if info.pid else ''}, {len(info.functions)} functions")
        return pb.BeginProbeSessionResponse(session_id=session_id)

    def RecordProbeEvents(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
        # Named up front, the session is ended even when the stream is cut before its first batch.
        session_id: str | None = dict(context.invocation_metadata()).get(SESSION_METADATA)
        received = 0
        try:
            for request in request_iterator:
                if session_id is None:
                    session_id = request.session_id
                elif request.session_id != session_id:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"one session per stream: {session_id}, then {request.session_id}")
                received += self._record(request, context)
        except grpc.RpcError:
            pass  # cut: said below
        if session_id is not None and _cut(context):
            self._end(session_id, None, CUT_REASON)
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
        rows = self._end(request.session_id, accounting, request.stop_reason or "unknown", context)
        return pb.EndProbeSessionResponse(rows=rows)

    def _session(self, session_id: str, context: grpc.ServicerContext) -> _Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no probe session {session_id!r} open in this agent")
            raise AssertionError("unreachable")  # context.abort raises
        return session

    def _record(self, request: Any, context: grpc.ServicerContext) -> int:
        session = self._session(request.session_id, context)
        with session.lock:
            if session.ended:
                context.abort(grpc.StatusCode.NOT_FOUND, f"probe session {request.session_id} has ended")
            try:
                cols = _columns(request, session)
            except InvalidBatch as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad batch: {e}")
            comm_names = list(request.comm_names)
            try:
                session.writer.append(_Batch(request.rows, comm_names), cols)
            except CoralError as e:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, _one_line(e))
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
        with session.lock:
            session.ended = True
            try:
                self.store.end_probe_session(session_id, accounting, stop_reason)
            except CoralError as e:
                self._log(f"probe session {session_id} not ended: {_one_line(e)}")
                if context is not None:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, _one_line(e))
                return session.writer.rows
            self._log(f"probe session {session_id} ended: {stop_reason} ({session.writer.rows} rows)")
            return session.writer.rows


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


def _session_info(request: Any) -> ProbeSessionInfo:
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
    return ProbeSessionInfo(probe_type=request.probe_type, target=request.target, pid=request.pid or None,
                            functions=list(request.functions), nargs=request.nargs, options=options)


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


def _one_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
