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
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CoralError, NotFound, ResourceExhausted
from .executor import AD_HOC_TIMEOUT_S, DAEMON_TIMEOUT_S, Executor, ScriptRun
from .leftovers import remove_leftovers
from .subscriptions import AgentTarget
from .triggers import EVENT, MANUAL, SCHEDULE, InvalidTrigger, Trigger, TriggerScheduler, checked

MAX_CODE_BYTES = 1 << 20
MAX_RUNNING = 5
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ENTRY = "main.ts"
FOLLOW_POLL_S = 0.2
# How long a stop of a script whose run is starting, or that run's end, waits
# for its start to be recorded (a start's confined `deno info` takes up to 60s).
START_WAIT_S = 120.0
FOLLOW_BATCH = 5000  # rows a follower reads at once: its memory stays bounded however far behind it is
# Statuses of a deployed script (`scripts.status`).
PENDING, RUNNING, STOPPED, COMPLETED, FAILED, DELETED = \
    "pending", "running", "stopped", "completed", "failed", "deleted"
# Of a script, and of an execution, that an agent's end cut short (see `recover`).
INTERRUPTED = "interrupted"


class InvalidScript(CoralError):
    """A deployment refused before it was accepted: the checker's first error."""


class ScriptNotFound(NotFound):
    """No deployed script has this id or name."""


@dataclass(frozen=True)
class Deployed:
    script_id: str
    version: int
    replaced_script_id: str | None = None  # the newest earlier version of the name (not deleted)


@dataclass(frozen=True)
class ExecutionRecord:
    execution_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    exit_code: int | None
    end_reason: str | None


@dataclass(frozen=True)
class ExecutionOutput:
    """The end of what one execution printed and emitted (oldest first)."""
    stdout: list[str]
    stderr: list[str]
    events: list[tuple[str, str, datetime]]  # name, data (JSON), timestamp


@dataclass(frozen=True)
class LogBatch:
    """Lines of one execution in order, as DuckDB gave them (a follower
    carries tens of thousands a second: no object per line): (epoch
    microseconds, stream, line, lost) each; microseconds None for the
    end-of-execution count of dropped lines."""
    execution_id: str
    rows: list[tuple[int | None, str, str, int]]


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
    trigger: Trigger = Trigger()


@dataclass(frozen=True)
class ScriptStatus:
    script: ScriptRecord
    executions: list[ExecutionRecord] = field(default_factory=list)  # newest first


_COLUMNS = ("s.id, s.name, s.version, s.status, s.mode, s.timeout_s, s.params, s.created_at, s.created_by,"
            " s.trigger_kind, s.trigger_cron, s.trigger_condition, s.trigger_interval_s")
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
        # Script ids whose executor.start is under way (without the lock), and
        # the stop asked for each meanwhile: its run is stopped once started.
        self._starting: dict[str, str | None] = {}
        self._started = threading.Condition(self._lock)  # notified as each start is recorded or fails
        self._runs: dict[str, ScriptRun] = {}     # script id -> its running execution
        self._scripts_of: dict[str, str] = {}     # execution id -> script id
        self._settled: dict[str, threading.Event] = {}  # execution id -> set once _ended has run
        self._closed = False
        # Fires of a trigger while that script's run was still going (not started again).
        self.fires_skipped: Counter[str] = Counter()
        self.triggers = TriggerScheduler(store, self._fire, _log)
        executor.on_end.append(self._ended)
        self._arm_triggers()

    def close(self) -> None:
        """No more starts (call before the executor stops its runs at shutdown):
        what was running keeps its status for a restart to find. A start under
        way is waited for (its run is stopped at once), so the executor's stop
        finds every run."""
        with self._started:
            self._closed = True
            self._pending.clear()
            self._started.wait_for(lambda: not self._starting, START_WAIT_S)
        self.triggers.close()
        if self._ended in self.executor.on_end:
            self.executor.on_end.remove(self._ended)

    def __enter__(self) -> "ScriptRegistry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- deploy -----------------------------------------------------------

    def deploy(self, *, name: str, code: str, params: dict[str, str] | None = None, daemon: bool = False,
               timeout_s: float | None = None, created_by: str = "", trigger: Trigger | None = None) -> Deployed:
        """Manual: runs once now. Schedule or event: pending, each fire of its
        trigger a new execution of this version through the same queue."""
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
        try:
            trigger = checked(trigger or Trigger(), self.store)
        except InvalidTrigger as e:
            raise InvalidScript(str(e)) from None
        if self._closed:
            raise CoralError("the agent is stopping; no deployments now")
        script_id = uuid.uuid4().hex[:16]
        staging = self.scripts_dir / ".staging" / script_id
        try:
            self._validate(staging, data)
            with self._lock:
                if self._closed:  # it stopped during the checks: nothing recorded after close()
                    raise CoralError("the agent is stopping; no deployments now")
                with self.store.cursor() as cur:
                    version = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM scripts"
                                          " WHERE name = ? AND mode IS NOT NULL", [name]).fetchone()[0]
                    older = [r[0] for r in cur.execute(
                        "SELECT id FROM scripts WHERE name = ? AND mode IS NOT NULL AND status IN (?, ?)",
                        [name, PENDING, RUNNING]).fetchall()]
                    replaced = cur.execute("SELECT id FROM scripts WHERE name = ? AND mode IS NOT NULL AND status <> ?"
                                           " ORDER BY version DESC LIMIT 1", [name, DELETED]).fetchone()
                final = self.scripts_dir / script_id / str(version)
                final.parent.mkdir(parents=True, mode=0o700)
                staging.rename(final)
                with self.store._writing() as cur:
                    cur.execute("INSERT INTO scripts (id, name, code, version, created_at, created_by, params, mode,"
                                " timeout_s, status, trigger_kind, trigger_cron, trigger_condition, trigger_interval_s)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?::JSON, ?, ?, ?, ?, ?, ?, ?)",
                                [script_id, name, code, version, datetime.now(timezone.utc), created_by,
                                 json.dumps(params), "daemon" if daemon else "ad-hoc", timeout, PENDING,
                                 trigger.kind, trigger.cron, trigger.condition, trigger.check_interval_s])
                stopping = [self._mark_stopped(old, STOPPED, f"replaced by version {version}") for old in older]
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(self.scripts_dir / script_id, ignore_errors=True)
            raise
        # The old version's run ends (streams, grace, kill) before the new one takes its place.
        self._end_runs([r for r in stopping if r is not None], f"replaced by version {version}")
        if trigger.kind == MANUAL:
            with self._lock:
                self._pending.append(script_id)
            self._pump()
        else:
            self.triggers.arm(script_id, trigger)
        return Deployed(script_id, version, replaced[0] if replaced else None)

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
        """Starts pending scripts, oldest first, while there is room. Called
        without the lock: a start (a confined `deno info`) takes seconds, and
        another script's stop, deploy or log follower must not wait for it."""
        while (picked := self._pick()) is not None:
            script_id, version, params, timeout = picked
            try:
                run = self.executor.start(self.scripts_dir / script_id / str(version) / ENTRY, target=AgentTarget(),
                                          params=json.loads(params or "{}"), timeout_s=timeout, script_id=script_id)
            except ResourceExhausted:
                # Its slot taken meanwhile (a `coral run` through the agent): first in line at the next end.
                with self._started:
                    self._unmark_starting(script_id)
                    if self._status_of(script_id) == PENDING and not self._closed:
                        self._pending.appendleft(script_id)
                    # Unless that end came meanwhile and its _pump passed this script by.
                    if self.executor.running() + len(self._starting) >= self.executor.max_concurrent:
                        return
                continue
            except BaseException as e:
                with self._started:
                    self._unmark_starting(script_id)
                    if isinstance(e, CoralError) and self._status_of(script_id) == PENDING:
                        print(f"coral: deployed script {script_id} did not start: {e}", file=sys.stderr, flush=True)
                        # A triggered one stays armed: its next fire tries again.
                        self._set_status(script_id, PENDING if self.triggers.is_armed(script_id) else FAILED)
                if not isinstance(e, CoralError):
                    raise
                continue
            with self._started:
                stop = self._unmark_starting(script_id)
                self._runs[script_id] = run
                self._scripts_of[run.execution_id] = script_id
                self._settled[run.execution_id] = threading.Event()
                if self._closed:
                    stop = stop or "the agent is stopping"
                elif stop is None:
                    self._set_status(script_id, RUNNING)
            if stop is not None:  # stopped, deleted or replaced while it started: its status says so
                self.executor.stop(run, stop)

    def _pick(self) -> tuple[str, int, str | None, float] | None:
        """The next pending script to start, marked starting, and what its
        start needs; None when there is none or no room."""
        with self._lock:
            while self._pending and not self._closed \
                    and len(self._runs) + len(self._starting) < self.max_running \
                    and self.executor.running() + len(self._starting) < self.executor.max_concurrent:
                script_id = self._pending.popleft()
                with self.store.cursor() as cur:
                    row = cur.execute("SELECT version, params, timeout_s, status FROM scripts WHERE id = ?",
                                      [script_id]).fetchone()
                if row is not None and row[3] == PENDING:
                    self._starting[script_id] = None
                    return script_id, *row[:3]
            return None

    def _unmark_starting(self, script_id: str) -> str | None:
        """Lock held: its start is over; the stop asked for meanwhile, if any."""
        self._started.notify_all()
        return self._starting.pop(script_id, None)

    def _deployed_id(self, run: ScriptRun) -> str | None:
        """The script a run is of, from its path (scripts/<id>/<version>/main.ts)."""
        return run.script.parent.parent.name if run.script.parent.parent.parent == self.scripts_dir.resolve() \
            else None

    def _ended(self, run: ScriptRun) -> None:
        """The executor's end of a run: the script's status follows, the queue moves."""
        with self._started:
            # One that ended before its start was recorded: after the record.
            self._started.wait_for(lambda: self._deployed_id(run) not in self._starting, START_WAIT_S)
            script_id = self._scripts_of.pop(run.execution_id, None)
            if script_id is not None and self._runs.get(script_id) is run:
                del self._runs[script_id]
                if not self._closed and self._status_of(script_id) == RUNNING:
                    # Triggered: pending again, waiting for its next fire (its last execution says how this one ended).
                    self._set_status(script_id, PENDING if self.triggers.is_armed(script_id) else {
                        "completed": COMPLETED, "stopped": STOPPED, "timeout": STOPPED}.get(run.status, FAILED))
            settled = self._settled.pop(run.execution_id, None)
        self._pump()
        if settled is not None:
            settled.set()

    def _mark_stopped(self, script_id: str, status: str, reason: str) -> ScriptRun | None:
        """Lock held: no longer pending or running; its run, if any, to end.
        One starting is stopped as soon as it started (waited for here)."""
        if script_id in self._pending:
            self._pending.remove(script_id)
        self.triggers.disarm(script_id)
        self._set_status(script_id, status)
        if script_id in self._starting:
            self._starting[script_id] = reason
            self._started.wait_for(lambda: script_id not in self._starting, START_WAIT_S)
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

    # -- after a restart --------------------------------------------------

    def recover(self) -> None:
        """Once, at the agent's start: what the last agent left. Executions
        still `running` (it was killed or crashed: a clean stop records their
        end) are marked interrupted, and what is left of them is removed.
        Daemon scripts it was running or about to run start again, each a new
        execution through the queue; ad-hoc ones are marked interrupted, not
        run again; triggered ones keep their status for their triggers."""
        with self._lock:
            with self.store.cursor() as cur:
                stale = [r[0] for r in cur.execute("SELECT execution_id FROM script_executions WHERE status = ?",
                                                   [RUNNING]).fetchall() if r[0] not in self._scripts_of]
                scripts = cur.execute("SELECT id, mode FROM scripts WHERE mode IS NOT NULL AND status IN (?, ?)"
                                      " AND coalesce(trigger_kind, ?) = ? ORDER BY created_at",
                                      [PENDING, RUNNING, MANUAL, MANUAL]).fetchall()
            remove_leftovers(stale)
            with self.store._writing() as cur:
                for execution_id in stale:
                    cur.execute("UPDATE script_executions SET status = ?, completed_at = ?, end_reason = ?"
                                " WHERE execution_id = ?", [INTERRUPTED, datetime.now(timezone.utc),
                                                            "the agent ended while it ran (killed or crashed)",
                                                            execution_id])
                for script_id, mode in scripts:
                    cur.execute("UPDATE scripts SET status = ? WHERE id = ?",
                                [PENDING if mode == "daemon" else INTERRUPTED, script_id])
            again = [script_id for script_id, mode in scripts if mode == "daemon"]
            self._pending.extend(again)
        self._pump()
        shutil.rmtree(self.scripts_dir / ".staging", ignore_errors=True)  # deployments cut short
        if stale or scripts:
            _log(f"after a restart: {len(stale)} execution(s) marked interrupted, {len(again)} daemon script(s)"
                 f" started again, {len(scripts) - len(again)} ad-hoc script(s) not run again")

    # -- triggers ---------------------------------------------------------

    def _arm_triggers(self) -> None:
        """At the registry's start: the schedule and event triggers of every
        script not stopped or deleted fire again (afresh: a cron from its next
        time, a condition from its first check). One left `running` by the
        last agent waits as pending (recover() marks that run interrupted)."""
        with self.store.cursor() as cur:
            rows = cur.execute("SELECT id, trigger_kind, trigger_cron, trigger_condition, trigger_interval_s"
                               " FROM scripts WHERE mode IS NOT NULL AND trigger_kind IN (?, ?) AND status IN (?, ?)",
                               [SCHEDULE, EVENT, PENDING, RUNNING]).fetchall()
        with self.store._writing() as cur:
            cur.execute("UPDATE scripts SET status = ? WHERE mode IS NOT NULL AND trigger_kind IN (?, ?)"
                        " AND status = ?", [PENDING, SCHEDULE, EVENT, RUNNING])
        for script_id, *trigger in rows:
            self.triggers.arm(script_id, Trigger(*trigger))
        if rows:
            _log(f"{len(rows)} script trigger{'s' if len(rows) > 1 else ''} armed again")

    def _fire(self, script_id: str) -> bool:
        """A trigger's turn (on the trigger thread): a new execution of this
        version through the queue, unless its last one is still going (False)."""
        with self._lock:
            status = self._status_of(script_id)
            if self._closed or status not in (PENDING, RUNNING):  # stopped or deleted as it fired
                return True
            if script_id in self._runs or script_id in self._pending or script_id in self._starting:
                self.fires_skipped[script_id] += 1
                _log(f"trigger of deployed script {script_id} fired while its last run is still going:"
                     " not started again")
                return False
            self._pending.append(script_id)
        self._pump()
        return True

    # -- operator's commands ----------------------------------------------

    def stop(self, ref: str) -> ScriptRecord:
        script_id = self._resolve(ref)
        with self._lock:
            status = self._status_of(script_id)
            run = self._mark_stopped(script_id, STOPPED, "stopped by request") if status in (PENDING, RUNNING) \
                else None
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
            runs = [r for r in (self._mark_stopped(i, DELETED, "deleted") for i in ids) if r is not None]
        self._end_runs(runs, "deleted")

    def list(self, status: str | None = None, all_versions: bool = False) -> list[ScriptRecord]:
        """The latest version of each name (`all_versions`: every version),
        of `status` if given; deleted ones only as `status="deleted"` (what
        DeleteScript reads to say which it deleted), never in "all"."""
        sql = f"SELECT {_COLUMNS}, {_LAST} FROM scripts s WHERE s.mode IS NOT NULL"
        if not all_versions:
            sql += (" AND s.version = (SELECT max(version) FROM scripts t"
                    " WHERE t.name = s.name AND t.mode IS NOT NULL)")
        args: list = []
        if status in (None, "", "all"):
            sql += " AND s.status <> ?"
            args.append(DELETED)
        else:
            sql += " AND s.status = ?"
            args.append(status)
        with self.store.cursor() as cur:
            rows = cur.execute(sql + " ORDER BY s.name, s.version", args).fetchall()
        return [_record(r) for r in rows]

    def status(self, ref: str, tail: int = 10) -> ScriptStatus:
        script_id = self._resolve(ref)
        with self.store.cursor() as cur:
            rows = cur.execute("SELECT execution_id, status, started_at, completed_at, exit_code, end_reason"
                               " FROM script_executions WHERE script_id = ? ORDER BY started_at DESC LIMIT ?",
                               [script_id, max(0, int(tail))]).fetchall()
        return ScriptStatus(self._record(script_id), [ExecutionRecord(*r) for r in rows])

    def execution_output(self, execution_id: str, *, lines: int = 20, events: int = 10) -> ExecutionOutput:
        """The last `lines` lines of each stream and the last `events` emits of an execution."""
        with self.store.cursor() as cur:
            streams = {stream: [r[0] for r in reversed(cur.execute(
                "SELECT line FROM script_logs WHERE execution_id = ? AND stream = ?"
                " ORDER BY rowid DESC LIMIT ?", [execution_id, stream, lines]).fetchall())]
                for stream in ("stdout", "stderr")}
            emitted = cur.execute("SELECT name, data, timestamp FROM emitted_events WHERE execution_id = ?"
                                  " ORDER BY timestamp DESC, id LIMIT ?", [execution_id, events]).fetchall()
        return ExecutionOutput(streams["stdout"], streams["stderr"], [tuple(r) for r in reversed(emitted)])

    def log_batches(self, ref: str, *, tail: int = 100, follow: bool = False,
                    stop_event: threading.Event | None = None, execution_id: str | None = None) -> Iterator[LogBatch]:
        """One execution's lines (default: the latest, or the one about to
        start), the last `tail` first; with `follow`, new lines until that
        execution ends or `stop_event` is set. Nothing is dropped on the way:
        a slow reader reads later rows. Lines the script's limits dropped are
        each line's `lost`, and those after its last line a last, empty one.
        Each batch is what was stored at that moment, at most FOLLOW_BATCH lines."""
        script_id = self._resolve(ref)
        stop_event = stop_event or threading.Event()
        if execution_id:
            with self.store.cursor() as cur:
                known = cur.execute("SELECT 1 FROM script_executions WHERE execution_id = ? AND script_id = ?",
                                    [execution_id, script_id]).fetchone()
            if known is None and not self._running(script_id, execution_id):
                raise ScriptNotFound(f"unknown execution {execution_id!r} of script {ref!r}")
        else:
            execution_id = self._latest_execution(script_id, follow, stop_event)
            if execution_id is None:
                return
        # Microseconds, not TIMESTAMPTZ: DuckDB's datetimes with a zone cost 5x the read.
        columns = "epoch_us(timestamp), stream, line, coalesce(lost, 0)"
        with self.store.cursor() as cur:
            last = cur.execute("SELECT coalesce(max(rowid), -1) FROM script_logs WHERE execution_id = ?",
                               [execution_id]).fetchone()[0]
            tail_rows = cur.execute(f"SELECT {columns} FROM script_logs WHERE execution_id = ? AND rowid <= ?"
                                    " ORDER BY rowid DESC LIMIT ?", [execution_id, last, max(0, int(tail))]).fetchall()
        tail_rows.reverse()
        for start in range(0, len(tail_rows), FOLLOW_BATCH):
            yield LogBatch(execution_id, tail_rows[start:start + FOLLOW_BATCH])
        while not stop_event.is_set():
            live = self._running(script_id, execution_id)
            with self.store.cursor() as cur:
                new = cur.execute(f"SELECT rowid, {columns} FROM script_logs WHERE execution_id = ? AND rowid > ?"
                                  " ORDER BY rowid LIMIT ?", [execution_id, last, FOLLOW_BATCH]).fetchall()
            if new:
                last = new[-1][0]
                yield LogBatch(execution_id, [row[1:] for row in new])
            if len(new) == FOLLOW_BATCH:
                continue
            if not live:  # ended before that read: its lines were all stored
                break
            if not follow:
                return
            stop_event.wait(FOLLOW_POLL_S)
        if not stop_event.is_set():
            trailing = self._dropped_at_end(execution_id)
            if trailing:
                yield LogBatch(execution_id, [(None, "", "", trailing)])

    def _running(self, script_id: str, execution_id: str) -> bool:
        with self._lock:
            return self._scripts_of.get(execution_id) == script_id

    def _latest_execution(self, script_id: str, follow: bool, stop_event: threading.Event) -> str | None:
        """The running execution, else the newest recorded one; a follower of a
        pending script (queued, or its trigger armed) waits for its first."""
        while True:
            with self._lock:
                run = self._runs.get(script_id)
                # Queued or starting, or its trigger armed: its first execution is to come.
                waiting = script_id in self._pending or script_id in self._starting \
                    or self.triggers.is_armed(script_id)
            if run is not None:
                return run.execution_id
            with self.store.cursor() as cur:
                row = cur.execute("SELECT execution_id FROM script_executions WHERE script_id = ?"
                                  " ORDER BY started_at DESC LIMIT 1", [script_id]).fetchone()
            if row is not None or not (follow and waiting) or stop_event.wait(FOLLOW_POLL_S):
                return row[0] if row is not None else None

    def _dropped_at_end(self, execution_id: str) -> int:
        """Lines the limits dropped after the execution's last stored line."""
        with self.store.cursor() as cur:
            row = cur.execute("SELECT e.log_lines_dropped - (SELECT coalesce(sum(lost), 0) FROM script_logs"
                              " WHERE execution_id = ?) FROM script_executions e WHERE e.execution_id = ?",
                              [execution_id, execution_id]).fetchone()
        return max(0, int(row[0] or 0)) if row is not None else 0

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
    *head, params, created_at, created_by, kind, cron, condition, interval, last = row
    return ScriptRecord(*head, json.loads(params or "{}"), created_at, created_by,
                        ExecutionRecord(*last.values()) if last else None,
                        Trigger(kind or MANUAL, cron, condition, interval))


def _log(line: str) -> None:
    print(f"coral: {line}", file=sys.stderr, flush=True)
