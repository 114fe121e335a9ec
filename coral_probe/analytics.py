"""Probe events read as function-level spans: the answers behind the SDK's
metrics.* and traces.* calls. A service is a process name (comm) or the
basename of the probed binary; an error is a non-zero return value."""

import time

import duckdb

from .errors import CoralError

_SERVICE = "(comm = $service OR regexp_extract(binary_path, '[^/]+$') = $service)"
_DEFAULT_WINDOW_MS = 3_600_000


def _cutoff_ns(window_ms: int) -> int:
    return time.time_ns() - (window_ms or _DEFAULT_WINDOW_MS) * 1_000_000


def percentile(cur: duckdb.DuckDBPyConnection, service: str, metric: str, p: float, window_ms: int) -> tuple[float, int]:
    if p > 1:
        p /= 100
    if not 0 <= p <= 1:
        raise CoralError(f"percentile {p} out of range: use 0-1 (0.99) or 0-100 (99)")
    row = cur.execute(
        f"SELECT quantile_cont(duration_ns, $p), count(*) FROM probe_events WHERE {_SERVICE}"
        " AND function_name = $metric AND duration_ns IS NOT NULL AND epoch_ns(timestamp) >= $cutoff",
        {"service": service, "metric": metric, "p": p, "cutoff": _cutoff_ns(window_ms)}).fetchone()
    return (float(row[0]) if row[0] is not None else 0.0), int(row[1])


def error_rate(cur, service: str, function: str, window_ms: int) -> tuple[float, int, int]:
    row = cur.execute(
        f"SELECT count(*) FILTER (return_value <> 0), count(*) FROM probe_events WHERE {_SERVICE}"
        " AND ($function = '' OR function_name = $function) AND return_value IS NOT NULL"
        " AND epoch_ns(timestamp) >= $cutoff",
        {"service": service, "function": function, "cutoff": _cutoff_ns(window_ms)}).fetchone()
    errors, total = int(row[0]), int(row[1])
    return (errors / total if total else 0.0), errors, total


def find_spans(cur, service: str, function: str, *, min_duration_ns: int, errors_only: bool, window_ms: int,
               limit: int) -> list[dict]:
    order = "epoch_ns(timestamp) DESC" if errors_only else "duration_ns DESC"
    rows = cur.execute(
        "SELECT function_name, comm, pid, tid, epoch_ns(timestamp), duration_ns, return_value, args"
        f" FROM probe_events WHERE {_SERVICE} AND ($function = '' OR function_name = $function)"
        " AND coalesce(duration_ns, 0) >= $min_duration AND epoch_ns(timestamp) >= $cutoff"
        f" AND ($errors_only = false OR coalesce(return_value, 0) <> 0) ORDER BY {order} LIMIT $limit",
        {"service": service, "function": function, "min_duration": min_duration_ns, "errors_only": errors_only,
         "cutoff": _cutoff_ns(window_ms), "limit": min(limit or 100, 10_000)}).fetchall()
    keys = ("function", "service", "pid", "tid", "timestamp_ns", "duration_ns", "return_value", "args")
    return [dict(zip(keys, row)) for row in rows]
