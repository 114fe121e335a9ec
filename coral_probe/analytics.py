"""Probe events read as the function-level spans of services: the one
implementation behind the agent's QueryService (api/query_service.py) and the
SDK's metrics.* and traces.* (agent/handlers.py), so both answer alike.

A service's events are those of the probe sessions named after it
(services.py; a row older than the name is its target's basename). A service
nobody configured and no session recorded is NotFound, with the known names:
a misspelled name is told, not answered with a silent 0. An error is a
non-zero return value. Percentiles come from a DDSketch (sketch.py) built
by DuckDB in one GROUP BY: within 1% relative error of the exact value of rank
floor(q (n - 1)), and mergeable across agents."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb

from .errors import CoralError, NotFound
from .services import ServiceMap
from .sketch import Sketch, bucket_sql

_DEFAULT_WINDOW_MS = 3_600_000
DEFAULT_TRACES = 100
MAX_TRACES = 10_000
# A session's service, as stored or (older rows) its target's basename.
_SESSION_SERVICE = "coalesce(service, regexp_extract(target, '[^/]+$'))"
_OF_SERVICE = f"session_id IN (SELECT session_id FROM probe_sessions WHERE {_SESSION_SERVICE} = $service)"
_IN_WINDOW = "timestamp >= make_timestamp_ns($cutoff)"


@dataclass
class ServiceInfo:
    name: str
    agent_id: str
    instance_count: int = 0            # distinct pids in its events
    binaries: list[str] = field(default_factory=list)
    events: int = 0
    last_seen_ns: int | None = None    # its newest event


@dataclass
class Percentile:
    value: float                       # ns, from the sketch
    count: int
    sketch: Sketch


@dataclass
class Span:
    session_id: str
    function: str
    service: str
    pid: int
    tid: int
    timestamp_ns: int
    duration_ns: int | None
    return_value: int | None
    args: list[int]

    def trace_id(self, agent_id: str) -> str:
        """Names the call across the fleet."""
        return f"{agent_id}/{self.session_id}/{self.timestamp_ns}/{self.tid}"


def _cutoff_ns(window_ms: int) -> int:
    return time.time_ns() - (window_ms or _DEFAULT_WINDOW_MS) * 1_000_000


def _recorded(cur: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in cur.execute(f"SELECT DISTINCT {_SESSION_SERVICE} FROM probe_sessions").fetchall()]


def check_service(cur: duckdb.DuckDBPyConnection, service: str, services: ServiceMap) -> None:
    """NotFound, naming the known services, unless `service` is configured or recorded."""
    if service in services.binaries:
        return
    recorded = _recorded(cur)
    if service in recorded:
        return
    known = sorted(set(recorded) | set(services.binaries))
    raise NotFound(f"unknown service '{service}': " + (f"known: {', '.join(known)}" if known else "no services yet"))


def list_services(cur: duckdb.DuckDBPyConnection, services: ServiceMap, agent_id: str) -> list[ServiceInfo]:
    """Every service with sessions, and the configured ones (perhaps with none), by name."""
    found = {name: ServiceInfo(name, agent_id, binaries=[binary]) for name, binary in services.binaries.items()}
    rows = cur.execute(
        f"WITH sessions AS (SELECT session_id, {_SESSION_SERVICE} AS service, target FROM probe_sessions),"
        " per_pid AS (SELECT session_id, pid, count(*) AS events, max(timestamp) AS last FROM probe_events"
        "             GROUP BY session_id, pid)"
        " SELECT s.service, list(DISTINCT s.target), count(DISTINCT p.pid), coalesce(sum(p.events), 0),"
        "        epoch_ns(max(p.last))"
        " FROM sessions s LEFT JOIN per_pid p USING (session_id) GROUP BY s.service").fetchall()
    for name, targets, instances, events, last_ns in rows:
        info = found.setdefault(name, ServiceInfo(name, agent_id))
        info.binaries = sorted(set(info.binaries) | set(targets))
        info.instance_count, info.events, info.last_seen_ns = int(instances), int(events), last_ns
    return [found[name] for name in sorted(found)]


def get_service(cur: duckdb.DuckDBPyConnection, name: str, services: ServiceMap,
                agent_id: str) -> tuple[ServiceInfo, list[str]]:
    """The service and its probed functions that have events."""
    check_service(cur, name, services)
    info = next(s for s in list_services(cur, services, agent_id) if s.name == name)
    functions = [r[0] for r in cur.execute(
        f"SELECT DISTINCT function_name FROM probe_events WHERE {_OF_SERVICE} ORDER BY 1",
        {"service": name}).fetchall()]
    return info, functions


def percentile(cur: duckdb.DuckDBPyConnection, service: str, metric: str, p: float, window_ms: int,
               services: ServiceMap) -> Percentile:
    """The p-quantile of `metric`'s (a function's) durations; p is 0-1 or 0-100."""
    if p > 1:
        p /= 100
    if not 0 <= p <= 1:
        raise CoralError(f"percentile {p} out of range: use 0-1 (0.99) or 0-100 (99)")
    if not metric:
        raise CoralError("no metric: name the probed function")
    check_service(cur, service, services)
    rows = cur.execute(
        f"SELECT CASE WHEN duration_ns > 0 THEN {bucket_sql('duration_ns')} END AS k, count(*) FROM probe_events"
        f" WHERE {_OF_SERVICE} AND function_name = $metric AND duration_ns IS NOT NULL AND {_IN_WINDOW}"
        " GROUP BY k",
        {"service": service, "metric": metric, "cutoff": _cutoff_ns(window_ms)}).fetchall()
    sketch = Sketch()
    for k, n in rows:
        if k is None:
            sketch.zero_count += n
        else:
            sketch.counts[k] += n
    return Percentile(sketch.quantile(p), sketch.count, sketch)


def error_rate(cur: duckdb.DuckDBPyConnection, service: str, function: str, window_ms: int,
               services: ServiceMap) -> tuple[float, int, int]:
    """(rate, errors, calls) over the calls with a return value."""
    check_service(cur, service, services)
    row = cur.execute(
        f"SELECT count(*) FILTER (return_value <> 0), count(*) FROM probe_events WHERE {_OF_SERVICE}"
        f" AND ($function = '' OR function_name = $function) AND return_value IS NOT NULL AND {_IN_WINDOW}",
        {"service": service, "function": function, "cutoff": _cutoff_ns(window_ms)}).fetchone()
    errors, total = int(row[0]), int(row[1])
    return (errors / total if total else 0.0), errors, total


def find_spans(cur: duckdb.DuckDBPyConnection, service: str, function: str, *, min_duration_ns: int,
               errors_only: bool, window_ms: int, limit: int, services: ServiceMap) -> tuple[list[Span], int]:
    """Slow calls (at least min_duration_ns, slowest first) or calls returning
    non-zero (newest first), at most `limit` (0: DEFAULT_TRACES), and how many
    matched before the limit."""
    check_service(cur, service, services)
    where = (f"{_OF_SERVICE} AND ($function = '' OR function_name = $function) AND {_IN_WINDOW}"
             " AND coalesce(duration_ns, 0) >= $min_duration"
             + (" AND return_value <> 0" if errors_only else " AND duration_ns IS NOT NULL"))
    order = "timestamp DESC, tid" if errors_only else "duration_ns DESC, timestamp DESC, tid"
    params = {"service": service, "function": function, "cutoff": _cutoff_ns(window_ms),
              "min_duration": min_duration_ns}
    total = cur.execute(f"SELECT count(*) FROM probe_events WHERE {where}", params).fetchone()[0]
    rows = cur.execute(
        "SELECT session_id, function_name, pid, tid, epoch_ns(timestamp), duration_ns, return_value, args"
        f" FROM probe_events WHERE {where} ORDER BY {order} LIMIT $limit",
        {**params, "limit": min(limit or DEFAULT_TRACES, MAX_TRACES)}).fetchall()
    return [Span(session_id, fn, service, pid, tid, ts, duration, ret, args)
            for session_id, fn, pid, tid, ts, duration, ret, args in rows], int(total)
