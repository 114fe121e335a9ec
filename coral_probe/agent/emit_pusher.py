"""Pushes the agent's emitted events to its colony (`coral agent start
--colony ADDR`), at least once.

Delivery: emitted_events rows are numbered (seq, in commit order: store.py);
the colony's acknowledgement of seq N means every event up to N is stored
there, and N is kept in the agent's DuckDB (colony_delivery). One stream of
PushEmits at a time: batches read from DuckDB in seq order after what was
sent, at most WINDOW_BATCHES unacknowledged; on any failure the stream is
opened again (backoff 0.1 s doubling to 2 s) and sending resumes after the
last acknowledged seq: events sent but not acknowledged are sent again, and
the colony stores them once (keyed by agent and event id). Unacknowledged
events stay in DuckDB across a stop of the agent and go after its restart.

One thread of ours reads the acknowledgements; gRPC's own thread pulls the
batches from `_batches`, which waits for room in the window and for new events
(a wake from the store at each commit, or every IDLE_POLL_S)."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import duckdb
import grpc

from ..api import client, cpb, cpb_grpc
from ..errors import CoralError, first_line

BATCH_EVENTS = 5000
# Under gRPC's default 4 MiB a message; one event's data is at most 64 KiB.
BATCH_BYTES = 3 << 20
WINDOW_BATCHES = 4
IDLE_POLL_S = 0.5
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.1, 2.0

_UNSENT = """
SELECT id, seq, epoch_us(timestamp), name, data::VARCHAR, severity, coalesce(script_id, ''),
       coalesce(execution_id, ''), strlen(data::VARCHAR)
FROM emitted_events WHERE seq > ? ORDER BY seq LIMIT ?
"""


@dataclass(frozen=True)
class ColonyOptions:
    """`coral agent start --colony ADDR` (unix:PATH or HOST:PORT) and how to reach it."""
    address: str
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    token_file: str | None = None

    def channel(self, home: str | os.PathLike[str]) -> grpc.Channel:
        """Its options checked and files read now: a mistake is one line before the agent starts."""
        try:
            _, is_unix = client.target(self.address, home=home)
        except CoralError:
            raise CoralError(f"--colony {self.address}: expected unix:PATH or HOST:PORT") from None
        if is_unix and (self.tls_ca or self.tls_cert or self.tls_key):
            raise CoralError(f"--colony {self.address}: the --colony-tls options apply to HOST:PORT, "
                             "not a Unix socket")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise CoralError("--colony-tls-cert and --colony-tls-key go together")
        try:
            return client.channel(self.address, home=home, tls_ca=self.tls_ca, tls_cert=self.tls_cert,
                                  tls_key=self.tls_key, token_file=self.token_file)
        except CoralError as e:  # a file that cannot be read: named by the agent's own option
            raise CoralError(str(e).replace("--tls-", "--colony-tls-")
                             .replace("--token-file", "--colony-token-file")) from None


@dataclass
class _Stream:
    """One PushEmits call: what it sent and what is still unacknowledged."""
    sent_through: int
    in_flight: deque[int] = field(default_factory=deque)  # the last seq of each batch not yet acknowledged
    over: bool = False


class EmitPusher:
    def __init__(self, store, colony: str, channel: grpc.Channel, agent_id: str, *,
                 log: Callable[[str], None]):
        self.store, self.colony, self.agent_id, self._log = store, colony, agent_id, log
        self._channel = channel
        self._stub = cpb_grpc.ColonyServiceStub(channel)
        self._cond = threading.Condition()
        self._news = False  # events committed since the last read
        self._stopping = False
        self._call: grpc.Future | None = None
        self._thread = threading.Thread(target=self._run, name="coral-emit-pusher", daemon=True)

    def start(self) -> None:
        self.store.on_emitted.append(self.wake)
        self._thread.start()

    def wake(self) -> None:
        with self._cond:
            self._news = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Ends the stream; what the colony did not acknowledge stays for the next start."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            call = self._call
        if call is not None:
            call.cancel()
        self._thread.join()
        self.store.on_emitted.remove(self.wake)
        self._channel.close()

    def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        reachable: bool | None = None  # as far as the log said: one line per change, not per retry
        while True:
            try:
                acked = self.store.delivered_through(self.colony)
            except CoralError as e:
                self._log(f"emits are not pushed to the colony any more: {first_line(e)}")
                return
            stream = _Stream(sent_through=acked)
            try:
                with self._cond:
                    if self._stopping:
                        return
                    self._call = call = self._stub.PushEmits(self._batches(stream))
                for ack in call:  # the first answers the agent id: the colony is there
                    if not reachable:
                        self._log(f"colony {self.colony} reachable again; sending the emits it lacks" if reachable
                                  is False else f"pushing emits to colony {self.colony} as agent {self.agent_id}")
                        reachable = True
                    backoff = BACKOFF_FIRST_S
                    if ack.through_seq > acked:
                        acked = ack.through_seq
                        self.store.record_delivery(self.colony, acked)
                    with self._cond:
                        while stream.in_flight and stream.in_flight[0] <= acked:
                            stream.in_flight.popleft()
                        self._cond.notify_all()
                problem = "it ended the stream"
            except grpc.RpcError as e:
                problem = f"{e.code().name}: {(e.details() or '').split(';')[0]}"  # gRPC's first clause says it
            except CoralError as e:  # the agent's own store failed
                call.cancel()
                self._log(f"emits are not pushed to the colony any more: {first_line(e)}")
                return
            finally:
                with self._cond:
                    stream.over = True
                    self._call = None
                    self._cond.notify_all()
            with self._cond:
                if self._stopping:
                    return
                if reachable is not False:
                    reachable = False
                    self._log(f"colony {self.colony} unreachable ({problem}); emits wait in the agent's "
                              "database and go once it is back")
                self._cond.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _batches(self, stream: _Stream) -> Iterator[cpb.EmitBatch]:
        """The requests of one stream (pulled by gRPC's thread): the agent id
        first, then the events after the last acknowledged one, in seq order."""
        yield cpb.EmitBatch(agent_id=self.agent_id)
        more = True  # events may be waiting: at the start, and after a read that left some behind
        while True:
            with self._cond:
                while True:
                    if self._stopping or stream.over:
                        return
                    if len(stream.in_flight) < WINDOW_BATCHES and (more or self._news):
                        break
                    if not self._cond.wait(IDLE_POLL_S):
                        more = True  # and every IDLE_POLL_S, wake or not
                self._news = False
            try:
                batch, more = self._unsent(stream.sent_through)
            except (CoralError, duckdb.Error):
                return  # the store is closing (or failed): the stream ends, _run says why
            if not batch.events:
                continue
            with self._cond:
                stream.sent_through = batch.events[-1].seq
                stream.in_flight.append(stream.sent_through)
            yield batch

    def _unsent(self, after: int) -> tuple[cpb.EmitBatch, bool]:
        """The next batch after seq `after`, and whether more may follow it."""
        with self.store.cursor() as cur:
            rows = cur.execute(_UNSENT, [after, BATCH_EVENTS]).fetchall()
        batch = cpb.EmitBatch()
        add = batch.events.add  # a few us an event less than EmittedEvent(...) each
        size = 0
        for event_id, seq, timestamp_us, name, data, severity, script_id, execution_id, data_bytes in rows:
            size += data_bytes + len(name) + 128
            if batch.events and size > BATCH_BYTES:
                break
            add(id=event_id, seq=seq, timestamp_us=timestamp_us, name=name, data_json=data, severity=severity,
                script_id=script_id, execution_id=execution_id)
        return batch, len(batch.events) < len(rows) or len(rows) == BATCH_EVENTS
