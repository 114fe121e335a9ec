"""A `coral probe attach` recorded by the running agent (ProbeService,
api/probe_service.py) instead of in a DuckDB file the agent holds: what
session._stream uses of a Store, over gRPC.

The command's drain loop never waits on the agent: batches go into a bounded
queue that gRPC's own thread sends from. A batch that finds the queue full
(the agent behind), and everything after the agent went away, is not stored
and counted; the command's output goes on."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING

import grpc

from ..errors import CoralError
from . import client, pb, pb_grpc
from .probe_service import SESSION_METADATA, column_dtypes

if TYPE_CHECKING:
    from ..accounting import Accounting
    from ..store import ProbeSessionInfo

# ~3 s of the consumer's 50 ms batches waiting for the agent.
MAX_QUEUED_BATCHES = 64
# Under gRPC's default 4 MiB limit on a message the agent receives.
MESSAGE_BYTES = 2 << 20
CALL_TIMEOUT_S = 30.0
# The last queued batches are sent within this, or the rest is counted as not stored.
FINISH_TIMEOUT_S = 60.0
_POLL_S = 0.1


def _reason(e: grpc.RpcError) -> str:
    code = e.code() if isinstance(e, grpc.Call) else None
    details = (e.details() if isinstance(e, grpc.Call) else None) or str(e)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return "the agent went away"
    return f"the agent refused: {details.splitlines()[0] if details else code}"


class AgentStore:
    """The session's row and its events, in the agent's store."""

    where = "the agent's database"

    def __init__(self, home: str | os.PathLike[str]):
        self.channel = client.channel(None, home=home)
        self.stub = pb_grpc.ProbeServiceStub(self.channel)
        self._token = ""  # "id.secret": what appends and the end need
        self._writer: RemoteEventWriter | None = None

    def begin_probe_session(self, info: "ProbeSessionInfo") -> str:
        request = pb.BeginProbeSessionRequest(
            probe_type=info.probe_type, target=info.target, pid=info.pid or 0, functions=info.functions,
            nargs=info.nargs, options_json=json.dumps(info.options), service=info.service or "",
            binary=info.binary or "")
        try:
            self._token = self.stub.BeginProbeSession(request, timeout=CALL_TIMEOUT_S).session_id
        except grpc.RpcError as e:
            raise CoralError(f"cannot record the session through the agent: {_reason(e)}") from None
        return self._token.partition(".")[0]  # the id shown and stored; the secret stays here

    def probe_event_writer(self, session_id: str, info: "ProbeSessionInfo") -> "RemoteEventWriter":
        self._writer = RemoteEventWriter(self.stub, session_id, self._token, info)
        return self._writer

    def end_probe_session(self, session_id: str, accounting: "Accounting", stop_reason: str) -> None:
        writer = self._writer
        assert writer is not None and writer.session_id == session_id
        writer.finish()
        a = accounting
        request = pb.EndProbeSessionRequest(
            session_id=self._token, hits=a.hits, delivered=a.delivered, lost=a.lost, filtered=a.filtered,
            unpaired=a.unwound, too_deep=a.too_deep, in_flight_at_stop=a.in_flight_at_stop,
            in_flight_at_attach=a.in_flight_at_attach, stop_reason=stop_reason)
        try:
            writer.rows = self.stub.EndProbeSession(request, timeout=CALL_TIMEOUT_S).rows
        except grpc.RpcError as e:
            writer.fail(_reason(e))

    def recorded(self, session_id: str) -> str:
        """Where the rows went, for the summary line."""
        writer = self._writer
        assert writer is not None
        if writer.failure is None:
            text = f"{writer.rows} rows in {self.where} (session {session_id})"
        else:
            text = f"{writer.sent} rows sent to the agent (session {session_id})"
        if writer.not_stored:
            text += f", {writer.not_stored:,} not stored ({writer.failure or 'the agent fell behind'})"
        return text

    def close(self) -> None:
        if self._writer is not None:
            self._writer.abandon()  # a session that ended in an error: the agent ends it, keeping its rows
        self.channel.close()


class RemoteEventWriter:
    """append() queues a batch's columns; gRPC's request thread turns them
    into ProbeEventBatch messages of at most MESSAGE_BYTES on one stream.

    `sent`: rows handed to gRPC; `rows`: rows the agent stored (known at the
    end); `not_stored`: rows dropped on a full queue or after a failure.
    Once the stream is over (`_count_left`), every appended row is in exactly
    one of `sent` and `not_stored`."""

    def __init__(self, stub: pb_grpc.ProbeServiceStub, session_id: str, token: str, info: "ProbeSessionInfo"):
        self.session_id = session_id
        self.rows = 0
        self.sent = 0
        self.not_stored = 0
        # The drain loop and gRPC's request thread both count: the counts, _in_hand, _queue
        # and _settled change under it, so a batch is always in exactly one of them.
        self._counting = threading.Condition()
        self._in_hand = 0  # of a batch taken from the queue, the rows not handed to gRPC yet
        self._settled = False  # the rest is counted as not stored: gRPC is handed no more
        self.failure: str | None = None
        self._said_failure = False
        self._columns = tuple(column_dtypes(info.nargs))
        self._queue: deque[tuple[int, dict, list[str]]] = deque()
        self._finishing = threading.Event()  # send what is queued, then end the stream
        self._abandoned = threading.Event()  # end it now
        self._token = token
        self._call = stub.RecordProbeEvents.future(self._requests(), metadata=((SESSION_METADATA, token),))
        self._call.add_done_callback(self._on_done)

    def append(self, batch, cols: dict) -> None:
        n = len(batch)
        if not n:
            return
        with self._counting:
            if self.failure is not None or self._settled or len(self._queue) >= MAX_QUEUED_BATCHES:
                self.not_stored += n
                return
            self._queue.append((n, {k: cols[k] for k in self._columns}, batch.comm_names))
            self._counting.notify()

    def flush_due(self) -> None:
        """Called from the drain loop: says once, there, that the agent is gone."""
        if self.failure is not None and not self._said_failure:
            self._said_failure = True
            print(f"coral: {self.failure}: the events from now on are not stored", file=sys.stderr, flush=True)

    def finish(self) -> None:
        """Sends what is queued and ends the stream."""
        self._finishing.set()
        try:
            self._call.result(timeout=FINISH_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            self.abandon()
            self.fail(f"the agent did not take the last events in {FINISH_TIMEOUT_S:.0f} s")
        except grpc.RpcError as e:
            self.fail(_reason(e))
        self._count_left()

    def fail(self, reason: str) -> None:
        self.failure = self.failure or reason
        self._count_left()

    def abandon(self) -> None:
        self._abandoned.set()
        self._call.cancel()

    def _count_left(self) -> None:
        with self._counting:
            self._settled = True
            self.not_stored += self._in_hand + sum(rows for rows, _, _ in self._queue)
            self._in_hand = 0
            self._queue.clear()

    def _on_done(self, call: grpc.Future) -> None:
        if not self._finishing.is_set() and not call.cancelled() and call.exception() is not None:
            self.failure = self.failure or _reason(call.exception())

    def _requests(self):
        """Runs on gRPC's thread, for as long as the call consumes it."""
        while True:
            with self._counting:
                # Woken by append; finish and abandon are seen within _POLL_S.
                while not (self._queue or self._finishing.is_set() or self._abandoned.is_set() or self._settled):
                    self._counting.wait(_POLL_S)
                if self._settled or self._abandoned.is_set() or not self._queue:
                    return
                rows, cols, comm_names = self._queue.popleft()
                self._in_hand = rows
            row_bytes = sum(cols[k].itemsize for k in self._columns)
            step = max(1, MESSAGE_BYTES // row_bytes)
            for start in range(0, rows, step):
                end = min(rows, start + step)
                message = pb.ProbeEventBatch(
                    session_id=self._token, rows=end - start, comm_names=comm_names,
                    columns={k: pb.EventColumn(dtype=cols[k].dtype.name, data=cols[k][start:end].tobytes())
                             for k in self._columns})
                with self._counting:
                    if self._settled:  # its unsent rows are in not_stored
                        return
                    self._in_hand -= end - start
                    self.sent += end - start
                yield message
