"""Schedule and event triggers of deployed scripts. One thread, owned by the
registry, fires each armed script when its cron time comes (croniter; times
in UTC) or when its condition, a read-only SELECT over the agent's store,
first returns a row (false → true; not again while it keeps returning rows).
Firing only asks the registry for a run: the registry keeps the queue (at
most 5 running) and never starts a second copy of a script still going."""

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import duckdb
from croniter import CroniterError, croniter

from ..errors import CoralError, first_line
from ..query_scope import TABLES, check_statement

MANUAL, SCHEDULE, EVENT = "manual", "schedule", "event"
CHECK_INTERVAL_S = 30.0
MIN_CHECK_INTERVAL_S = 1.0
MAX_CHECK_INTERVAL_S = 86400.0
# A condition runs on the trigger thread: a slow one delays the others' turns, so it is cut off.
CONDITION_TIMEOUT_S = 10.0
# Binding a condition evaluates its constant parts (even with the optimizer off)
# and DuckDB's interrupt is not looked at meanwhile: so the deploy binds it in a
# child process, killed after CONDITION_TIMEOUT_S, its address space capped.
BIND_MEMORY_BYTES = 1 << 30
_BIND_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
import duckdb
asked = json.load(sys.stdin)
con = duckdb.connect(config={"threads": 1})
for table, columns in asked["tables"].items():
    con.execute("CREATE TABLE " + table + " (" + ", ".join(c + " " + t for c, t in columns) + ")")
try:
    con.sql(asked["sql"]).types
except (duckdb.Error, MemoryError) as e:
    sys.exit((str(e).strip() or type(e).__name__).splitlines()[0])
""" % (BIND_MEMORY_BYTES, BIND_MEMORY_BYTES)
# The thread looks at the wall clock at least this often (a clock set forward is noticed).
MAX_SLEEP_S = 30.0
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class InvalidTrigger(CoralError):
    """A cron expression or condition refused at deploy: one line."""


@dataclass(frozen=True)
class Trigger:
    kind: str = MANUAL                     # manual, schedule or event
    cron: str | None = None                # schedule
    condition: str | None = None           # event
    check_interval_s: float | None = None  # event



def _now() -> datetime:
    return datetime.now(timezone.utc)


def next_fire(cron: str, after: datetime) -> datetime:
    """The cron time after `after`. Six fields: the first is seconds (as in
    Quartz or node-cron), so tests can fire every few seconds."""
    return croniter(cron, after, second_at_beginning=True).get_next(datetime)


def checked(trigger: Trigger, store) -> Trigger:
    """The trigger as stored and armed (defaults filled), or InvalidTrigger."""
    if trigger.kind == MANUAL:
        return Trigger()
    if trigger.kind == SCHEDULE:
        cron = " ".join((trigger.cron or "").split())
        if cron not in CRON_ALIASES and len(cron.split()) not in (5, 6):
            raise InvalidTrigger(f"invalid cron {trigger.cron!r}: 5 fields (minute hour day-of-month month "
                                 f"day-of-week), 6 with seconds first, or one of {', '.join(CRON_ALIASES)}")
        try:
            next_fire(cron, _now())
        except (CroniterError, ValueError, KeyError) as e:
            raise InvalidTrigger(f"invalid cron {trigger.cron!r}: {first_line(e)}") from None
        return Trigger(SCHEDULE, cron=cron)
    if trigger.kind == EVENT:
        interval = trigger.check_interval_s or CHECK_INTERVAL_S
        if not MIN_CHECK_INTERVAL_S <= interval <= MAX_CHECK_INTERVAL_S:
            raise InvalidTrigger(f"invalid check interval {interval:g}s: between 1s and 24h")
        _check_condition(store, trigger.condition or "")
        return Trigger(EVENT, condition=trigger.condition, check_interval_s=float(interval))
    raise InvalidTrigger(f"invalid trigger {trigger.kind!r}: manual, schedule or event")


def _check_condition(store, sql: str) -> None:
    """The guardrails of the SDK's db.query: one SELECT, naming only the
    agent's tables (no catalog, files or arbitrary table functions); then
    bound, so an unknown table or column is refused now, not at its first
    check, and so is one whose binding alone is too slow for the checks."""
    if not sql.strip():
        raise InvalidTrigger("invalid condition: empty; give one read-only SELECT statement")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise InvalidTrigger(f"invalid condition: {first_line(e)}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise InvalidTrigger("invalid condition: it must be one read-only SELECT statement")
    with store.cursor() as cur:
        try:
            check_statement(cur, sql, who="a trigger condition")
            columns = cur.execute("SELECT table_name, column_name, data_type FROM duckdb_columns()"
                                  " WHERE database_name = current_database() AND schema_name = 'main'"
                                  " AND list_contains(?, table_name) ORDER BY table_name, column_index",
                                  [sorted(TABLES)]).fetchall()
        except CoralError as e:
            raise InvalidTrigger(f"invalid condition: {first_line(e)}") from None
        except duckdb.Error as e:
            raise InvalidTrigger(f"invalid condition: {first_line(e)}") from None
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in columns:
        tables.setdefault(_quoted(table), []).append((_quoted(column), data_type))
    _bind_apart(tables, sql)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bind_apart(tables: dict[str, list[tuple[str, str]]], sql: str) -> None:
    """Binds `sql` over empty tables of the same columns in a child process
    (see _BIND_CHILD): what it refuses, or a bind over the time or memory
    bound, is InvalidTrigger."""
    try:
        child = subprocess.run([sys.executable, "-I", "-c", _BIND_CHILD], input=json.dumps(
            {"tables": tables, "sql": sql}), capture_output=True, text=True, timeout=CONDITION_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise InvalidTrigger(f"invalid condition: binding it took over {CONDITION_TIMEOUT_S:g}s (its constant"
                             " parts are evaluated then); make them cheaper") from None
    if child.returncode != 0:
        said = child.stderr.strip().splitlines()
        raise InvalidTrigger(f"invalid condition: {said[-1] if said else f'its check ended with {child.returncode}'}")


def condition_holds(store, sql: str, timeout_s: float = CONDITION_TIMEOUT_S) -> bool:
    """Whether the condition returns a row now (CoralError if it fails or takes too long)."""
    with store.cursor() as cur:
        timer = threading.Timer(timeout_s, cur.interrupt)
        timer.start()
        try:
            return cur.execute(sql).fetchone() is not None
        except duckdb.InterruptException:
            raise CoralError(f"condition timed out after {timeout_s:g}s") from None
        except duckdb.Error as e:
            raise CoralError(f"condition failed: {first_line(e)}") from None
        finally:
            timer.cancel()


@dataclass
class _Armed:
    trigger: Trigger
    due: datetime                # schedule: its next fire; event: its next check
    holding: bool = False        # event: the condition returned a row at the last check
    failure: str | None = None   # event: the last check's error, said once until it changes


class TriggerScheduler:
    """`fire(script_id)` is called on this thread when an armed trigger
    fires; False: not started (its last run still going), so an event's
    rising edge stays pending for its next check."""

    def __init__(self, store, fire: Callable[[str], bool], log: Callable[[str], None]):
        self.store, self._fire, self._log = store, fire, log
        self._armed: dict[str, _Armed] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        # Conditions answered, per script: a reader knows a check has seen what it wrote.
        self.checks: Counter[str] = Counter()

    def arm(self, script_id: str, trigger: Trigger) -> None:
        """A cron fires first at its next time; a condition is checked at once."""
        now = _now()
        due = next_fire(trigger.cron or "", now) if trigger.kind == SCHEDULE else now
        with self._changed:
            if self._closed:
                return
            self._armed[script_id] = _Armed(trigger, due)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="coral-triggers", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def disarm(self, script_id: str) -> None:
        with self._changed:
            self._armed.pop(script_id, None)

    def is_armed(self, script_id: str) -> bool:
        with self._changed:
            return script_id in self._armed

    def next_due(self, script_id: str) -> datetime | None:
        """Its next fire (schedule) or check (event), UTC; None when not armed."""
        with self._changed:
            armed = self._armed.get(script_id)
            return armed.due if armed else None

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._armed.clear()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(CONDITION_TIMEOUT_S + 5)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while True:
                    if self._closed:
                        return
                    now = _now()
                    due = [(i, a) for i, a in self._armed.items() if a.due <= now]
                    if due:
                        break
                    nearest = min((a.due for a in self._armed.values()), default=None)
                    sleep = MAX_SLEEP_S if nearest is None else (nearest - now).total_seconds()
                    self._changed.wait(min(MAX_SLEEP_S, max(sleep, 0.01)))
            for script_id, armed in sorted(due, key=lambda item: item[1].due):
                try:
                    if self._fires(script_id, armed) and not self._fire(script_id):
                        armed.holding = False  # fires again at its next check the condition holds
                except Exception as e:  # the store failed or closed: said; one turn's failure ends no other trigger
                    self._log(f"trigger of deployed script {script_id}: {first_line(e)}")

    def _fires(self, script_id: str, armed: _Armed) -> bool:
        """Its turn now: whether it fires; its next turn set."""
        trigger = armed.trigger
        if trigger.kind == SCHEDULE:
            armed.due = next_fire(trigger.cron or "", max(_now(), armed.due))
            return True
        try:
            holds = condition_holds(self.store, trigger.condition or "")
        except CoralError as e:
            if armed.failure != str(e):
                self._log(f"trigger of deployed script {script_id} not checked: {first_line(e)}")
            armed.failure = str(e)
            return False
        finally:
            armed.due = _now() + timedelta(seconds=trigger.check_interval_s or CHECK_INTERVAL_S)
        armed.failure = None
        self.checks[script_id] += 1
        rising = holds and not armed.holding
        armed.holding = holds
        return rising
