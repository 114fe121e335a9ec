"""The colony's DuckDB ($CORAL_HOME/colony.duckdb): the emitted events its
agents push, once each (agent id and event id are the key, so an event
resent after a lost acknowledgement is not stored twice)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np

from ..errors import CoralError, StoreFailed, first_line

SCHEMA = """
CREATE TABLE IF NOT EXISTS emitted_events (
    agent_id     VARCHAR NOT NULL,
    id           VARCHAR NOT NULL,        -- the agent's event id
    seq          BIGINT NOT NULL,         -- the agent's delivery order
    timestamp    TIMESTAMPTZ NOT NULL,    -- when emitted
    name         VARCHAR NOT NULL,
    data         JSON,
    severity     VARCHAR NOT NULL,
    script_id    VARCHAR,
    execution_id VARCHAR,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, id)
);
"""
# The tables a query on the colony's own store may name (query_scope.check_statement).
TABLES = frozenset({"emitted_events"})

_INSERT = """
INSERT OR IGNORE INTO emitted_events
SELECT $agent_id, id, seq, make_timestamptz(timestamp_us), name, data::JSON, severity,
       nullif(script_id, ''), nullif(execution_id, ''), now()
FROM coral_emits
"""


class ColonyStore:
    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(path))
        except (duckdb.Error, OSError) as e:
            raise CoralError(f"cannot open database {path}: {first_line(e)}") from None
        self.con.execute("SET memory_limit = '256MB'")
        self.con.execute(SCHEMA)
        # Operators' queries run here: no file, network or extension access through SQL.
        self.con.execute("SET enable_external_access = false; SET lock_configuration = true")
        self._write_lock = threading.Lock()
        self._cursors: set[duckdb.DuckDBPyConnection] = set()
        self._lock = threading.Condition()
        self._closed = False

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own for the calling thread, given back at the end of the `with`."""
        with self._lock:
            if self._closed:
                raise StoreFailed("the colony's database is closed (the colony is stopping)")
            cur = self.con.cursor()
            self._cursors.add(cur)
        try:
            yield cur
        finally:
            with self._lock:
                cur.close()
                self._cursors.discard(cur)
                self._lock.notify_all()

    def store_emits(self, agent_id: str, events: list) -> int:
        """Stores a batch of coral.colony.v1.EmittedEvent of one agent in one
        transaction; returns how many were new (a resent event is skipped)."""
        if not events:
            return 0
        frame = {
            "id": np.array([e.id for e in events], dtype=object),
            "seq": np.fromiter((e.seq for e in events), dtype=np.int64, count=len(events)),
            "timestamp_us": np.fromiter((e.timestamp_us for e in events), dtype=np.int64, count=len(events)),
            "name": np.array([e.name for e in events], dtype=object),
            "data": np.array([e.data_json or "null" for e in events], dtype=object),
            "severity": np.array([e.severity for e in events], dtype=object),
            "script_id": np.array([e.script_id for e in events], dtype=object),
            "execution_id": np.array([e.execution_id for e in events], dtype=object),
        }
        # One writer at a time: the batch and its count are one statement.
        with self._write_lock, self.cursor() as cur:
            cur.register("coral_emits", frame)
            try:
                return cur.execute(_INSERT, {"agent_id": agent_id}).fetchone()[0]
            except duckdb.Error as e:
                raise StoreFailed(f"the colony's database failed: {first_line(e)}") from None
            finally:
                cur.unregister("coral_emits")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for cur in list(self._cursors):
                cur.interrupt()
            while self._cursors:
                self._lock.wait(0.05)
            self.con.close()
