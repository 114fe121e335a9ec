"""The deployed scripts: what the AgentService's Deploy/Stop/Delete/List/
Status/Logs do. Each deployment is an immutable version in `scripts`, its
code under `home/scripts/<id>/<version>/main.ts`; it runs through the same
executor (sandbox, limits, probes released at every end) as `coral run`.
At most `max_running` run at once; the others wait as `pending`, in order."""

import json
import re
import shutil
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CoralError, NotFound
from .executor import AD_HOC_TIMEOUT_S, DAEMON_TIMEOUT_S, Executor, ScriptRun
from .subscriptions import AgentTarget

MAX_CODE_BYTES = 1 << 20
MAX_RUNNING = 5
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ENTRY = "main.ts"
FOLLOW_POLL_S = 0.2
# Statuses of a deployed script (`scripts.status`).
PENDING, RUNNING, STOPPED, COMPLETED, FAILED, DELETED = \
    "pending", "running", "stopped", "completed", "failed", "deleted"


class InvalidScript(CoralError):
    """A deployment refused before it was accepted: the checker's first error."""


class ScriptNotFound(NotFound):
    """No deployed script has this id or name."""


@dataclass(frozen=True)
class Deployed:
    script_id: str
    version: int


@dataclass(frozen=True)
class ExecutionRecord:
    execution_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    exit_code: int | None
    end_reason: str | None


@dataclass(frozen=True)
class ScriptRecord:
    id: str
    name: str
    version: int
    status: str
    mode: str                # "ad-hoc" or "daemon"
    timeout_s: float
    params: dict[str, str]
    created_at: datetime
    created_by: str | None
    last_execution: ExecutionRecord | None = None


@dataclass(frozen=True)
class ScriptStatus:
    script: ScriptRecord
    executions: list[ExecutionRecord] = field(default_factory=list)  # newest first


_COLUMNS = "s.id, s.name, s.version, s.status, s.mode, s.timeout_s, s.params, s.created_at, s.created_by"
_LAST = ("(SELECT struct_pack(execution_id := e.execution_id, status := e.status, started_at := e.started_at,"
         " ended_at := e.completed_at, exit_code := e.exit_code, end_reason := e.end_reason)"
         " FROM script_executions e WHERE e.script_id = s.id ORDER BY e.started_at DESC LIMIT 1)")


class ScriptRegistry:
    def __init__(self, store, executor: Executor, *, home: Path, max_running: int = MAX_RUNNING):
        self.store, self.executor = store, executor
        self.scripts_dir = Path(home) / "scripts"
        self.max_running = max_running
        self._lock = threading.RLock()
        self._pending: deque[str] = deque()      # script ids, oldest first
        self._runs: dict[str, ScriptRun] = {}     # script id -> its running execution
        self._scripts_of: dict[str, str] = {}     # execution id -> script id
        self._settled: dict[str, threading.Event] = {}  # execution id -> set once _ended has run
        self._closed = False
        executor.on_end.append(self._ended)

    def close(self) -> None:
        """No more starts (call before the executor stops its runs at shutdown):
        what was running keeps its status for a restart to find."""
        with self._lock:
            self._closed = True
            self._pending.clear()
        if self._ended in self.executor.on_end:
            self.executor.on_end.remove(self._ended)

    def __enter__(self) -> "ScriptRegistry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- deploy -----------------------------------------------------------

    def deploy(self, *, name: str, code: str, params: dict[str, str] | None = None, daemon: bool = False,
               timeout_s: float | None = None, created_by: str = "") -> Deployed:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InvalidScript(f"invalid script name {name!r}: 1 to 64 of A-Z a-z 0-9 _ . -")
        params = dict(params or {})
        if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in params.items()):
            raise InvalidScript("invalid params: keys and values must be strings, keys not empty")
        timeout = timeout_s or (DAEMON_TIMEOUT_S if daemon else AD_HOC_TIMEOUT_S)
        if not 0 < timeout <= DAEMON_TIMEOUT_S:  # the same bound as `coral run --timeout`
            raise InvalidScript(f"invalid timeout {timeout:g}s: must be above 0 and at most 86400 (24h)")
        data = code.encode()
        if len(data) > MAX_CODE_BYTES:
            raise InvalidScript(f"script refused: its code is {len(data)} bytes, over the "
                                f"{MAX_CODE_BYTES >> 20} MiB limit")
        if self._closed:
            raise CoralError("the agent is stopping; no deployments now")
        script_id = uuid.uuid4().hex[:16]
        staging = self.scripts_dir / ".staging" / script_id
        try:
            self._validate(staging, data)
            with self._lock:
                with self.store.cursor() as cur:
                    version = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM scripts"
                                          " WHERE name = ? AND mode IS NOT NULL", [name]).fetchone()[0]
                    older = [r[0] for r in cur.execute(
                        "SELECT id FROM scripts WHERE name = ? AND mode IS NOT NULL AND status IN (?, ?)",
                        [name, PENDING, RUNNING]).fetchall()]
                final = self.scripts_dir / script_id / str(version)
                final.parent.mkdir(parents=True, mode=0o700)
                staging.rename(final)
                with self.store._writing() as cur:
                    cur.execute("INSERT INTO scripts (id, name, code, version, created_at, created_by, params, mode,"
                                " timeout_s, status) VALUES (?, ?, ?, ?, ?, ?, ?::JSON, ?, ?, ?)",
                                [script_id, name, code, version, datetime.now(timezone.utc), created_by,
                                 json.dumps(params), "daemon" if daemon else "ad-hoc", timeout, PENDING])
                stopping = [self._mark_stopped(old, STOPPED) for old in older]
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(self.scripts_dir / script_id, ignore_errors=True)
            raise
        # The old version's run ends (streams, grace, kill) before the new one takes its place.
        self._end_runs([r for r in stopping if r is not None], f"replaced by version {version}")
        with self._lock:
            self._pending.append(script_id)
            self._pump()
        return Deployed(script_id, version)

    def _validate(self, staging: Path, data: bytes) -> None:
        """The sandbox's own checks, on its own confined Deno: the import graph
        (only @coral/sdk and the script's files), then `deno check`."""
        staging.mkdir(parents=True, mode=0o700)
        (staging / ENTRY).write_bytes(data)
        sandbox = self.executor.sandbox
        try:
            copy, _ = sandbox.prepare(staging / ENTRY, f"d{staging.name}")
        except CoralError as e:
            raise InvalidScript(str(e)) from None
        try:
            sandbox.type_check(copy)
        except CoralError as e:
            raise InvalidScript(str(e)) from None
        finally:
            sandbox.discard(copy)

    # -- running ----------------------------------------------------------

    def _pump(self) -> None:
        """Starts pending scripts, oldest first, while there is room. Lock held."""
        while self._pending and not self._closed and len(self._runs) < self.max_running \
                and self.executor.running() < self.executor.max_concurrent:
            script_id = self._pending.popleft()
            with self.store.cursor() as cur:
                row = cur.execute("SELECT version, params, timeout_s, status FROM scripts WHERE id = ?",
                                  [script_id]).fetchone()
            if row is None or row[3] != PENDING:
                continue
            version, params, timeout, _ = row
            try:
                run = self.executor.start(self.scripts_dir / script_id / str(version) / ENTRY, target=AgentTarget(),
                                          params=json.loads(params or "{}"), timeout_s=timeout, script_id=script_id)
            except CoralError as e:
                print(f"coral: deployed script {script_id} did not start: {e}", file=sys.stderr, flush=True)
                self._set_status(script_id, FAILED)
                continue
            self._runs[script_id] = run
            self._scripts_of[run.execution_id] = script_id
            self._settled[run.execution_id] = threading.Event()
            self._set_status(script_id, RUNNING)

    def _ended(self, run: ScriptRun) -> None:
        """The executor's end of a run: the script's status follows, the queue moves."""
        with self._lock:
            script_id = self._scripts_of.pop(run.execution_id, None)
            if script_id is not None and self._runs.get(script_id) is run:
                del self._runs[script_id]
                if not self._closed and self._status_of(script_id) == RUNNING:
                    self._set_status(script_id, {"completed": COMPLETED, "stopped": STOPPED,
                                                 "timeout": STOPPED}.get(run.status, FAILED))
            self._pump()
            settled = self._settled.pop(run.execution_id, None)
        if settled is not None:
            settled.set()

    def _mark_stopped(self, script_id: str, status: str) -> ScriptRun | None:
        """Lock held: no longer pending or running; its run, if any, to end."""
        if script_id in self._pending:
            self._pending.remove(script_id)
        self._set_status(script_id, status)
        return self._runs.get(script_id)

    def _end_runs(self, runs: list[ScriptRun], reason: str) -> None:
        for run in runs:
            self.executor.stop(run, reason)
        for run in runs:
            with self._lock:
                settled = self._settled.get(run.execution_id)
            # Its end recorded and the queue moved on: what the caller reads next is after the stop.
            if run.wait(self.executor.grace_s + 10) and settled is not None:
                settled.wait(30)

    # -- operator's commands ----------------------------------------------

    def stop(self, ref: str) -> ScriptRecord:
        script_id = self._resolve(ref)
        with self._lock:
            status = self._status_of(script_id)
            run = self._mark_stopped(script_id, STOPPED) if status in (PENDING, RUNNING) else None
        if run is not None:
            self._end_runs([run], "stopped by request")
        return self._record(script_id)

    def delete(self, ref: str) -> None:
        """By id: that version; by name: every version of the name."""
        script_id = self._resolve(ref)
        with self.store.cursor() as cur:
            ids = [script_id] if ref == script_id else [r[0] for r in cur.execute(
                "SELECT id FROM scripts WHERE name = ? AND mode IS NOT NULL AND status <> ?",
                [ref, DELETED]).fetchall()]
        with self._lock:
            runs = [r for r in (self._mark_stopped(i, DELETED) for i in ids) if r is not None]
        self._end_runs(runs, "deleted")

    def list(self, status: str | None = None) -> list[ScriptRecord]:
        """The latest version of each name; deleted ones only when asked for."""
        sql = (f"SELECT {_COLUMNS}, {_LAST} FROM scripts s WHERE s.mode IS NOT NULL AND s.version ="
               " (SELECT max(version) FROM scripts t WHERE t.name = s.name AND t.mode IS NOT NULL)")
        args: list = []
        if status in (None, "", "all"):
            sql += " AND s.status <> ?"
            args.append(DELETED)
        else:
            sql += " AND s.status = ?"
            args.append(status)
        with self.store.cursor() as cur:
            rows = cur.execute(sql + " ORDER BY s.name", args).fetchall()
        return [_record(r) for r in rows]

    def status(self, ref: str, tail: int = 10) -> ScriptStatus:
        script_id = self._resolve(ref)
        with self.store.cursor() as cur:
            rows = cur.execute("SELECT execution_id, status, started_at, completed_at, exit_code, end_reason"
                               " FROM script_executions WHERE script_id = ? ORDER BY started_at DESC LIMIT ?",
                               [script_id, max(0, int(tail))]).fetchall()
        return ScriptStatus(self._record(script_id), [ExecutionRecord(*r) for r in rows])

    def logs(self, ref: str, *, tail: int = 100, follow: bool = False,
             stop_event: threading.Event | None = None) -> Iterator[tuple[datetime, str, str]]:
        """Its executions' lines, the last `tail` first; with `follow`, new
        lines until its execution ends or `stop_event` is set."""
        script_id = self._resolve(ref)
        stop_event = stop_event or threading.Event()
        rows_of = (" FROM script_logs l JOIN script_executions e"
                   " ON l.execution_id = e.execution_id WHERE e.script_id = ?")
        sql = "SELECT l.rowid, l.timestamp, l.stream, l.line" + rows_of
        with self.store.cursor() as cur:
            rows = cur.execute(sql + " ORDER BY l.rowid DESC LIMIT ?", [script_id, max(0, int(tail))]).fetchall()
            last = cur.execute("SELECT coalesce(max(l.rowid), -1)" + rows_of, [script_id]).fetchone()[0]
        for _, ts, stream, line in reversed(rows):
            yield ts, stream, line
        while follow and not stop_event.is_set():
            with self._lock:
                live = script_id in self._runs or script_id in self._pending
            with self.store.cursor() as cur:
                new = cur.execute(sql + " AND l.rowid > ? ORDER BY l.rowid", [script_id, last]).fetchall()
            for rowid, ts, stream, line in new:
                last = rowid
                yield ts, stream, line
            if not live:  # ended before that read: its lines were all stored
                return
            stop_event.wait(FOLLOW_POLL_S)

    # -- the table --------------------------------------------------------

    def _resolve(self, ref: str) -> str:
        with self.store.cursor() as cur:
            row = cur.execute("SELECT id FROM scripts WHERE id = ? AND mode IS NOT NULL", [ref]).fetchone() \
                or cur.execute("SELECT id FROM scripts WHERE name = ? AND mode IS NOT NULL AND status <> ?"
                               " ORDER BY version DESC LIMIT 1", [ref, DELETED]).fetchone()
        if row is None:
            raise ScriptNotFound(f"unknown script {ref!r}: no deployed script has this id or name")
        return row[0]

    def _record(self, script_id: str) -> ScriptRecord:
        with self.store.cursor() as cur:
            row = cur.execute(f"SELECT {_COLUMNS}, {_LAST} FROM scripts s WHERE s.id = ?", [script_id]).fetchone()
        return _record(row)

    def _status_of(self, script_id: str) -> str | None:
        with self.store.cursor() as cur:
            row = cur.execute("SELECT status FROM scripts WHERE id = ?", [script_id]).fetchone()
        return row[0] if row else None

    def _set_status(self, script_id: str, status: str) -> None:
        with self.store._writing() as cur:
            cur.execute("UPDATE scripts SET status = ? WHERE id = ?", [status, script_id])


def _record(row) -> ScriptRecord:
    *head, params, created_at, created_by, last = row
    return ScriptRecord(*head, json.loads(params or "{}"), created_at, created_by,
                        ExecutionRecord(*last.values()) if last else None)
