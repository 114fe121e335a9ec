"""The agent's DuckDB: schema and batched writes. Only the agent writes;
everyone else reads through `open_readonly`."""

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, Sequence

import duckdb

from .errors import CoralError, StoreFailed, first_line

if TYPE_CHECKING:
    from .accounting import Accounting

SCHEMA = """
CREATE TABLE IF NOT EXISTS probe_sessions (
    session_id   VARCHAR PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ,
    probe_type   VARCHAR NOT NULL,
    target       VARCHAR NOT NULL,
    pid          INTEGER,
    functions    VARCHAR[] NOT NULL,
    options      JSON,
    -- hits = delivered + lost + filtered + in_flight_at_stop (coral_probe/accounting.py)
    hits         BIGINT,
    delivered    BIGINT,
    lost         BIGINT,                  -- ring full, too deep or unwound: every call not reported
    filtered     BIGINT,
    unpaired     BIGINT,                  -- of lost: frames unwound without a return
    too_deep     BIGINT,                  -- of lost: nested past the open-call limit
    in_flight_at_stop   BIGINT,           -- calls still running when the session stopped
    in_flight_at_attach BIGINT,           -- returns of calls begun before attach (not hits)
    stop_reason  VARCHAR,                 -- interrupt, terminate, duration, command exited, ...
    execution_id VARCHAR,                 -- the script execution whose probe this was
    service      VARCHAR                  -- coral_probe/services.py; NULL (older files): the basename of target
);
CREATE TABLE IF NOT EXISTS probe_events (
    session_id    VARCHAR NOT NULL,
    timestamp     TIMESTAMP_NS NOT NULL,   -- wall clock, UTC
    probe_type    VARCHAR NOT NULL,
    function_name VARCHAR NOT NULL,
    binary_path   VARCHAR,
    pid           INTEGER NOT NULL,
    tid           INTEGER NOT NULL,
    comm          VARCHAR NOT NULL,
    duration_ns   BIGINT,                  -- NULL without a return probe
    args          BIGINT[] NOT NULL,
    return_value  BIGINT                   -- NULL without a return probe, or when DWARF says it returns nothing
);
CREATE TABLE IF NOT EXISTS emitted_events (
    id           VARCHAR PRIMARY KEY,
    timestamp    TIMESTAMPTZ NOT NULL,
    name         VARCHAR NOT NULL,
    data         JSON,
    severity     VARCHAR NOT NULL,
    script_id    VARCHAR,
    execution_id VARCHAR,
    seq          BIGINT                   -- the agent's delivery order (commit order), for the colony
);
-- How far each colony (by --colony address) has acknowledged emitted_events.
CREATE TABLE IF NOT EXISTS colony_delivery (
    colony       VARCHAR PRIMARY KEY,
    acked_seq    BIGINT NOT NULL          -- every emitted event up to this seq is stored there
);
CREATE TABLE IF NOT EXISTS scripts (
    id         VARCHAR PRIMARY KEY,
    name       VARCHAR NOT NULL,
    code       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_by VARCHAR
);
CREATE TABLE IF NOT EXISTS script_executions (
    execution_id VARCHAR PRIMARY KEY,
    script_id    VARCHAR NOT NULL,
    status       VARCHAR NOT NULL,   -- running, completed, failed, killed, timeout
    started_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    exit_code    INTEGER,
    params       JSON,
    end_reason   VARCHAR,            -- why it ended, when a limit or a stop ended it
    log_lines_truncated BIGINT DEFAULT 0,  -- cut at the line length cap
    log_lines_dropped   BIGINT DEFAULT 0,  -- past the line rate or the bytes per execution
    log_bytes_dropped   BIGINT DEFAULT 0,  -- of dropped lines and cut tails
    emits_refused       BIGINT DEFAULT 0   -- too large or too fast
);
CREATE TABLE IF NOT EXISTS script_logs (
    execution_id VARCHAR NOT NULL,
    timestamp    TIMESTAMPTZ NOT NULL,
    stream       VARCHAR NOT NULL,   -- stdout, stderr
    line         VARCHAR NOT NULL,
    lost         BIGINT DEFAULT 0    -- lines of the execution dropped just before this one (limits)
);
CREATE TABLE IF NOT EXISTS system_metrics_local (
    timestamp    TIMESTAMPTZ NOT NULL,
    name         VARCHAR NOT NULL,
    value        DOUBLE NOT NULL,
    unit         VARCHAR,
    attributes   JSON
);
"""


# What a script sent past its limits (agent/log_pump.py, agent/handlers.py).
LIMIT_COLUMNS = ("log_lines_truncated", "log_lines_dropped", "log_bytes_dropped", "emits_refused")
_SESSION_COLUMNS_ADDED = (("too_deep", "BIGINT"), ("in_flight_at_stop", "BIGINT"),
                          ("in_flight_at_attach", "BIGINT"), ("stop_reason", "VARCHAR"), ("execution_id", "VARCHAR"),
                          ("service", "VARCHAR"))
# Deployed scripts (agent/registry.py): params, ad-hoc or daemon, timeout, and
# pending / running / stopped / completed / failed / deleted; their trigger
# (agent/triggers.py: manual, schedule with a cron, event with a condition
# checked every trigger_interval_s). NULL for `coral run`'s.
_SCRIPT_COLUMNS_ADDED = (("params", "JSON"), ("mode", "VARCHAR"), ("timeout_s", "DOUBLE"), ("status", "VARCHAR"),
                         ("trigger_kind", "VARCHAR"), ("trigger_cron", "VARCHAR"),
                         ("trigger_condition", "VARCHAR"), ("trigger_interval_s", "DOUBLE"))
# Closing waits this long for queries in flight (interrupted) to give their cursors back.
CLOSE_WAIT_S = 30.0

log = logging.getLogger(__name__)



def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), read_only=read_only)
    except (duckdb.Error, OSError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CoralError(f"cannot open database {path}: {first_line}") from None


def open_readonly(path: Path) -> duckdb.DuckDBPyConnection:
    return _open(path, read_only=True)


@dataclass(frozen=True)
class ProbeSessionInfo:
    probe_type: str
    target: str
    pid: int | None
    functions: list[str]
    nargs: int
    options: dict
    # Its name (services.py), given by whoever begins the session; sent to an
    # agent, None lets the agent name it.
    service: str | None = None
    binary: str | None = None  # the probed file's real path, for an agent to name it (not stored)


# A group of emits in one statement of a few string parameters: DuckDB reads
# Python objects (lists, registered numpy columns) holding the GIL, row by
# row, and the agent's SDK threads need it meanwhile. Data texts are joined
# by NUL (JSON text has none); ids are 32 hex digits each of one string;
# names and severities are indexes into their lists, in fixed-width digits.
_INSERT_EMITS = """
INSERT INTO emitted_events (id, timestamp, name, data, severity, script_id, execution_id, seq)
SELECT substr($ids, 32 * i - 31, 32), now(), $names[substr($name_codes, 4 * i - 3, 4)::INT], data::JSON,
       $severities[substr($severity_codes, i, 1)::INT], $script_id, $execution_id, $first_seq + i - 1
FROM unnest(string_split($data, chr(0))) WITH ORDINALITY AS emits(data, i)
"""


def _dictionary(values: tuple[str, ...], width: int) -> tuple[list[str], str]:
    """The distinct values, and each value's 1-based index among them in `width` digits."""
    index: dict[str, str] = {}
    for value in values:
        if value not in index:
            if len(index) + 1 >= 10 ** width:
                raise ValueError(f"more than {10 ** width - 1} distinct values in one group of emits")
            index[value] = str(len(index) + 1).zfill(width)
    return list(index), "".join([index[value] for value in values])


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.con = _open(path, read_only=False)
        # The agent appends; it needs no big buffer pool or many threads, and
        # must stay small next to the programs it watches.
        self.con.execute("SET memory_limit = '96MB'; SET threads = 1")
        self.con.execute(SCHEMA)
        # Databases made before a column existed get it (CREATE ... IF NOT EXISTS keeps old tables).
        self.con.execute("ALTER TABLE script_executions ADD COLUMN IF NOT EXISTS end_reason VARCHAR")
        self.con.execute("ALTER TABLE script_logs ADD COLUMN IF NOT EXISTS lost BIGINT DEFAULT 0")
        for column in LIMIT_COLUMNS:
            self.con.execute(f"ALTER TABLE script_executions ADD COLUMN IF NOT EXISTS {column} BIGINT DEFAULT 0")
        for column, kind in _SCRIPT_COLUMNS_ADDED:
            self.con.execute(f"ALTER TABLE scripts ADD COLUMN IF NOT EXISTS {column} {kind}")
        for column, kind in _SESSION_COLUMNS_ADDED:
            self.con.execute(f"ALTER TABLE probe_sessions ADD COLUMN IF NOT EXISTS {column} {kind}")
        self._number_emits()
        # Scripts query this database: no file, network or extension access
        # through SQL (read_csv('/etc/passwd')), and no SET to undo it.
        self.con.execute("SET enable_external_access = false; SET lock_configuration = true")
        self._lock = threading.Condition()
        # Lent out, for close() to wait for; True for the store's own writes,
        # which are short and never interrupted (an interrupted write is lost).
        self._cursors: dict[duckdb.DuckDBPyConnection, bool] = {}
        self._closed = False
        self.failure: str | None = None  # the first failed write, after which nothing is written
        self._writers: dict[str, ProbeEventWriter] = {}  # by session: rows waiting for their row group

    def cursor(self):
        """A connection of its own for another thread (DuckDB cursors are not
        shared), given back at the end of the `with`: close() interrupts and
        waits for those still out, never closes the database under them."""
        return self._lend(write=False)

    @contextlib.contextmanager
    def _lend(self, write: bool):
        with self._lock:
            if self._closed:
                raise StoreFailed("the agent's database is closed (the agent is stopping)")
            cur = self.con.cursor()
            self._cursors[cur] = write
        try:
            yield cur
        finally:
            with self._lock:
                cur.close()
                del self._cursors[cur]
                self._lock.notify_all()

    @contextlib.contextmanager
    def _writing(self):
        """A cursor for a write. The first failed write (disk full, an
        invalidated database) fails every later one at once, with its reason:
        the executor stops the runs and says why in one line."""
        if self.failure is not None:
            raise StoreFailed(self.failure)
        try:
            with self._lend(write=True) as cur:
                yield cur
        except duckdb.Error as e:
            self.failure = self.failure or f"the agent's database failed: {first_line(e)}"
            raise StoreFailed(self.failure) from None

    def _number_emits(self) -> None:
        """Gives emitted events a seq: rows of files made before it existed are
        numbered in time order; later ones get the next numbers (emit_many)."""
        self.con.execute("ALTER TABLE emitted_events ADD COLUMN IF NOT EXISTS seq BIGINT")
        self.con.execute("UPDATE emitted_events SET seq = numbered.seq FROM ("
                         " SELECT id, (SELECT coalesce(max(seq), 0) FROM emitted_events)"
                         "   + row_number() OVER (ORDER BY timestamp, id) AS seq"
                         " FROM emitted_events WHERE seq IS NULL) numbered"
                         " WHERE emitted_events.id = numbered.id")
        (self._emit_seq,) = self.con.execute("SELECT coalesce(max(seq), 0) FROM emitted_events").fetchone() or (0,)
        # Held from taking seqs to the commit: a reader that sees seq N committed sees every seq below it.
        self._emit_lock = threading.Lock()
        self.on_emitted: list[Callable[[], None]] = []  # called after each commit of emits (the colony pusher)

    def emit(self, name: str, data_json: str, severity: str, script_id: str | None,
             execution_id: str | None) -> str:
        [event_id] = self.emit_many([(name, data_json, severity)], script_id, execution_id)
        if event_id is None:
            raise CoralError("emit data is not valid JSON")
        return event_id

    def emit_many(self, events: list[tuple[str, str, str]], script_id: str | None,
                  execution_id: str | None) -> Sequence[str | None]:
        """Stores events of one execution, each (name, data as JSON text,
        severity), in one INSERT, stamped with its time. Returns their ids;
        None for an event whose data DuckDB does not take as JSON (stricter
        than Python's json: a lone surrogate escape), left out."""
        # UUIDv7's layout in 32 hex digits: the time in ms, then 80 random bits.
        # Ids in time order keep the inserts into the key index (here and in
        # the colony's) local: random ones cost twice as much at 500k rows.
        now_ms, random_hex = f"{time.time_ns() // 1_000_000:012x}", os.urandom(10 * len(events)).hex()
        ids = [now_ms + random_hex[i:i + 20] for i in range(0, len(random_hex), 20)]
        stored: Sequence[str | None] = ids
        with self._emit_lock, self._writing() as cur:
            try:
                self._insert_emits(cur, "".join(ids), events, script_id, execution_id)
            except (duckdb.ConversionException, ValueError):
                # The statement stored nothing: the others go without the culprits.
                valid = cur.execute("SELECT list(i ORDER BY i) FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS e(data, i)"
                                    " WHERE json_valid(data) AND NOT contains(data, chr(0))",
                                    [[data for _, data, _ in events]]).fetchone()[0] or []
                kept = set(valid)
                stored = [event_id if i + 1 in kept else None for i, event_id in enumerate(ids)]
                if kept:
                    self._insert_emits(cur, "".join(ids[i - 1] for i in valid), [events[i - 1] for i in valid],
                                       script_id, execution_id)
        for listener in self.on_emitted:
            listener()
        return stored

    def _insert_emits(self, cur: duckdb.DuckDBPyConnection, hex_ids: str, events: list[tuple[str, str, str]],
                      script_id: str | None, execution_id: str | None) -> None:
        names, data, severities = zip(*events)
        joined = "\0".join(data)
        if joined.count("\0") != len(events) - 1:
            raise ValueError("emit data with a NUL character")  # no JSON text has one
        name_list, name_codes = _dictionary(names, 4)
        severity_list, severity_codes = _dictionary(severities, 1)
        cur.execute(_INSERT_EMITS, {"ids": hex_ids, "data": joined, "names": name_list, "name_codes": name_codes,
                                    "severities": severity_list, "severity_codes": severity_codes,
                                    "script_id": script_id, "execution_id": execution_id,
                                    "first_seq": self._emit_seq + 1})
        self._emit_seq += len(events)

    def delivered_through(self, colony: str) -> int:
        """The last seq `colony` acknowledged (0: none yet)."""
        with self.cursor() as cur:
            row = cur.execute("SELECT acked_seq FROM colony_delivery WHERE colony = ?", [colony]).fetchone()
        return row[0] if row else 0

    def record_delivery(self, colony: str, acked_seq: int) -> None:
        with self._writing() as cur:
            cur.execute("INSERT OR REPLACE INTO colony_delivery VALUES (?, ?)", [colony, acked_seq])

    def record_system_metrics(self, samples: list[tuple[str, float, str]]) -> None:
        now = datetime.now(timezone.utc)
        with self._writing() as cur:
            cur.executemany("INSERT INTO system_metrics_local VALUES (?, ?, ?, ?, NULL)",
                            [[now, name, value, unit] for name, value, unit in samples])

    def register_script(self, name: str, code: str) -> str:
        from .store_opener import script_id_of

        script_id = script_id_of(code)
        with self._writing() as cur:
            version = cur.execute("SELECT count(*) + 1 FROM scripts WHERE name = ?", [name]).fetchone()[0]
            if not cur.execute("SELECT 1 FROM scripts WHERE id = ?", [script_id]).fetchone():
                cur.execute("INSERT INTO scripts (id, name, code, version, created_at, created_by)"
                            " VALUES (?, ?, ?, ?, ?, ?)",
                            [script_id, name, code, version, datetime.now(timezone.utc), "cli"])
        return script_id

    def begin_execution(self, execution_id: str, script_id: str, params: dict) -> None:
        with self._writing() as cur:
            cur.execute("INSERT INTO script_executions (execution_id, script_id, status, started_at, params)"
                        " VALUES (?, ?, 'running', ?, ?)",
                        [execution_id, script_id, datetime.now(timezone.utc), json.dumps(params)])

    def end_execution(self, execution_id: str, status: str, exit_code: int | None, *,
                      reason: str | None = None, limits: dict[str, int] | None = None) -> None:
        """`limits`: counts for LIMIT_COLUMNS (what the script sent past its limits)."""
        limits = limits or {}
        unknown = set(limits) - set(LIMIT_COLUMNS)
        if unknown:
            raise ValueError(f"not a limit column: {', '.join(sorted(unknown))}")
        assignments = "".join(f", {column} = ?" for column in limits)
        with self._writing() as cur:
            cur.execute("UPDATE script_executions SET status = ?, completed_at = ?, exit_code = ?, end_reason = ?"
                        f"{assignments} WHERE execution_id = ?",
                        [status, datetime.now(timezone.utc), exit_code, reason, *limits.values(), execution_id])

    def append_logs(self, execution_id: str, lines: list[tuple[datetime, str, str, int]]) -> None:
        """(timestamp, stream, line, lines dropped just before it) each."""
        if not lines:
            return
        stamps, streams, texts, lost = (list(column) for column in zip(*lines))
        with self._writing() as cur:
            # One statement of lists: executemany runs one INSERT per row (~700 rows/s).
            cur.execute("INSERT INTO script_logs (execution_id, timestamp, stream, line, lost)"
                        " SELECT ?, unnest(?::TIMESTAMPTZ[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]),"
                        " unnest(?::BIGINT[])", [execution_id, stamps, streams, texts, lost])

    def interrupt(self) -> None:
        """Interrupts the queries running on lent cursors (they raise)."""
        with self._lock:
            for cur, write in self._cursors.items():
                if not write:
                    cur.interrupt()

    def close(self) -> None:
        """Interrupts the queries still running on lent cursors and closes the
        database once they are given back: closing it under a running query
        aborts the process (a double free in DuckDB)."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        if self.failure is None and not self._closed:
            try:  # a session that ended without end_probe_session (an error) keeps its rows
                self._flush_writers()
            except duckdb.Error as e:
                log.warning("coral: the last probe events were not stored: %s", first_line(e))
        with self._lock:
            self._closed = True
            # Again and again: a query started between two interrupts runs otherwise.
            while self._cursors and time.monotonic() < deadline:
                self.interrupt()
                self._lock.wait(0.05)
            if self._cursors:
                log.warning("coral: %d database queries did not stop; the database is left open", len(self._cursors))
                return
            self.con.close()

    def begin_probe_session(self, info: ProbeSessionInfo, *, execution_id: str | None = None) -> str:
        session_id = uuid.uuid4().hex[:12]
        with self._writing() as cur:
            cur.execute(
                "INSERT INTO probe_sessions (session_id, started_at, probe_type, target, pid, functions, options,"
                " execution_id, service) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [session_id, datetime.now(timezone.utc), info.probe_type, info.target, info.pid,
                 info.functions, json.dumps(info.options), execution_id, info.service])
        return session_id

    def end_probe_session(self, session_id: str, accounting: "Accounting | None", stop_reason: str) -> None:
        """`accounting` None: nobody can count the session's hits any more (the
        command recording it through the agent went away); they stay NULL."""
        self._flush_writers(session_id)  # its last rows first: stored == delivered when the row says so
        self._writers.pop(session_id, None)
        a = accounting
        counts = [None] * 8 if a is None else [a.hits, a.delivered, a.lost, a.filtered, a.unwound, a.too_deep,
                                               a.in_flight_at_stop, a.in_flight_at_attach]
        with self._writing() as cur:
            cur.execute(
                "UPDATE probe_sessions SET ended_at = ?, hits = ?, delivered = ?, lost = ?, filtered = ?,"
                " unpaired = ?, too_deep = ?, in_flight_at_stop = ?, in_flight_at_attach = ?, stop_reason = ?"
                " WHERE session_id = ?",
                [datetime.now(timezone.utc), *counts, stop_reason, session_id])

    def probe_event_writer(self, session_id: str, info: ProbeSessionInfo, *,
                           any_thread: bool = False) -> "ProbeEventWriter":
        """Appends go through the store's own connection, for the thread that
        opened it; `any_thread`: through a cursor lent for each INSERT (the
        agent's RPC threads), failing as the store's other writes do. Rows are
        buffered (ProbeEventWriter); end_probe_session and close() write what is left."""
        connection = self._writing if any_thread else (lambda: contextlib.nullcontext(self.con))
        writer = ProbeEventWriter(connection, session_id, info)
        self._writers[session_id] = writer
        return writer

    def _flush_writers(self, session_id: str | None = None) -> None:
        for sid, writer in list(self._writers.items()):
            if session_id is None or sid == session_id:
                writer.flush()


# DuckDB's row group (DEFAULT_ROW_GROUP_SIZE). An INSERT of whole row groups is
# written straight to the database file, compressed once; smaller INSERTs go
# through the WAL, are merged into the last row group and compressed again at
# the checkpoint. Per row, here: ~0.45 us in whole groups against ~0.9 us in
# 60k-row INSERTs and ~2 us in the consumer's 50 ms batches (~3k rows), where
# each statement's own cost (~2-4 ms: register, parse, commit) dominates.
ROW_GROUP_ROWS = 122_880
# Rows wait at most this long for their row group to fill before they are
# written anyway (so below ~25k events/s, in INSERTs of up to 5 s of rows).
FLUSH_AFTER_S = 5.0


class ProbeEventWriter:
    """Appends decoded batches: numpy columns in, one INSERT per row group.

    Batches are kept (numpy columns, not rows) until a whole row group is
    there, then written in one INSERT; the rest waits for the next batch, at
    most FLUSH_AFTER_S (`flush_due`), or for `flush` at the end of the session.
    `rows` counts the rows written."""

    # Columns the INSERT reads (the args it needs are added per session).
    _COLUMNS = ("ts_ns", "probe_id", "pid", "tid", "comm", "duration_ns", "has_return", "has_value", "ret")
    # Unsigned in Rust; INTEGER in the table: pids, tids and codes < 2^31 read as int32 with no cast.
    _AS_INT32 = ("pid", "tid", "probe_id", "comm")

    def __init__(self, connection: Callable[[], ContextManager[duckdb.DuckDBPyConnection]], session_id: str,
                 info: ProbeSessionInfo, group_rows: int = ROW_GROUP_ROWS, flush_after_s: float = FLUSH_AFTER_S):
        self.connection = connection
        # The agent's RPC threads append while its close() may flush.
        self._lock = threading.Lock()
        self.session_id = session_id
        self.info = info
        self.group_rows = group_rows
        self.flush_after_s = flush_after_s
        self.rows = 0
        self._columns = self._COLUMNS + tuple(f"arg{i}" for i in range(info.nargs))
        self._pending: list[dict] = []
        self._pending_rows = 0
        self._pending_since = 0.0
        self._comm_names: list[str] = []
        # Names come in as parameters and are indexed per row: no Python string per row.
        args = ", ".join(f"arg{i}" for i in range(info.nargs))
        self._sql = ("INSERT INTO probe_events SELECT $session, make_timestamp_ns(ts_ns), $probe_type,"
                     " $functions[probe_id + 1], $target, pid, tid, $comms[comm + 1],"
                     " CASE WHEN has_return THEN duration_ns END, "
                     f"[{args}]::BIGINT[], CASE WHEN has_value THEN ret END FROM coral_batch")

    def append(self, batch, cols: dict) -> None:
        n = len(batch)
        if not n:
            return
        with self._lock:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.append({k: cols[k] for k in self._columns})
            self._pending_rows += n
            # Comm codes index a table that only grows: the newest batch's names cover the older batches.
            self._comm_names = batch.comm_names
            if self._pending_rows >= self.group_rows:
                self._write(self._pending_rows - self._pending_rows % self.group_rows)
                return
        self.flush_due()

    def flush_due(self) -> None:
        """Writes the pending rows once the oldest has waited FLUSH_AFTER_S."""
        with self._lock:
            if self._pending and time.monotonic() - self._pending_since >= self.flush_after_s:
                self._write(self._pending_rows)

    def flush(self) -> None:
        """Writes every pending row."""
        with self._lock:
            if self._pending:
                self._write(self._pending_rows)

    def _write(self, rows: int) -> None:
        import numpy as np  # only probe sessions need it; `coral run` starts faster without

        pending = self._pending
        if len(pending) == 1:
            joined = pending[0]
        else:
            joined = {k: np.concatenate([cols[k] for cols in pending]) for k in self._columns}
        frame = {k: joined[k][:rows] for k in self._columns}
        for k in self._AS_INT32:
            frame[k] = frame[k].view(np.int32)
        with self.connection() as con:
            con.register("coral_batch", frame)
            try:
                con.execute(self._sql, {"session": self.session_id, "probe_type": self.info.probe_type,
                                        "target": self.info.target, "functions": list(self.info.functions),
                                        "comms": list(self._comm_names)})
            finally:
                con.unregister("coral_batch")
        left = self._pending_rows - rows
        self._pending = [{k: joined[k][rows:] for k in self._columns}] if left else []
        self._pending_rows = left
        if left:
            self._pending_since = time.monotonic()
        self.rows += rows
