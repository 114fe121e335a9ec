"""Read-only SQL over the agent's DuckDB, as the CLI and scripts see it."""

import json
import math
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import duckdb

from .errors import CoralError, ResourceExhausted
from .paths import default_db_path
from .query_scope import QueryScope, apply_scope, check_statement
from .store import open_readonly


def run_readonly(sql: str, db_path: Path | None, limit: int) -> tuple[list[str], list[tuple]]:
    path = db_path or default_db_path()
    if not path.exists():
        raise CoralError(f"no database at {path} yet: run `coral probe attach` first")
    con = open_readonly(path)
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchmany(limit)
    except duckdb.Error as e:
        raise CoralError(f"query failed: {str(e).splitlines()[0]}") from None
    finally:
        con.close()


ROW_CAP = 10_000
REPLY_CAP_BYTES = 16 << 20
# Rows converted to Python at a time: the byte cap and the deadline are
# checked between them, so a reply stops growing soon after a bound.
FETCH_ROWS = 32


@dataclass(frozen=True)
class QueryReply:
    columns: list[str]
    rows_json: str  # a JSON array of one object per row
    row_count: int
    truncated: bool  # more than ROW_CAP rows


def _json_value(value):
    if isinstance(value, int) and not -(2**53) <= value <= 2**53:
        return str(value)  # past JavaScript's exact integers
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity: JSON.parse would throw
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def _size_floor(value) -> int:
    """Bytes its JSON takes at least: a huge value is refused before it is encoded."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bytes):
        return 2 * len(value)
    if isinstance(value, (list, tuple)):
        return sum(_size_floor(v) for v in value)
    if isinstance(value, dict):
        return sum(_size_floor(k) + _size_floor(v) for k, v in value.items())
    return 1


def sdk_query(cur: duckdb.DuckDBPyConnection, sql: str, scope: QueryScope, timeout_s: float,
              reply_cap: int = REPLY_CAP_BYTES) -> QueryReply:
    """A script's query on its own cursor: one SELECT over what `scope` lets
    it see, at most ROW_CAP rows and `reply_cap` bytes of JSON, and all of it
    (execution, fetching, encoding) within `timeout_s`."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise CoralError(f"invalid SQL: {str(e).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise CoralError("db.query takes one read-only SELECT statement")
    deadline = time.monotonic() + timeout_s
    timed_out = CoralError(f"query timed out after {timeout_s:g}s")
    timer = threading.Timer(timeout_s, cur.interrupt)
    timer.start()
    try:
        apply_scope(cur, scope)
        # The text checked is the text run: no wrapping that a trailing
        # `-- comment` could break or a crafted statement escape.
        check_statement(cur, sql)
        cur.execute(sql)
        columns = [d[0] for d in cur.description]
        rows: list[str] = []
        size = 2  # the brackets
        truncated = False
        while not truncated:
            batch = cur.fetchmany(FETCH_ROWS)
            if not batch:
                break
            for row in batch:
                if len(rows) == ROW_CAP:
                    truncated = True
                    break
                if time.monotonic() > deadline:
                    raise timed_out
                if size + sum(_size_floor(v) for v in row) > reply_cap:
                    raise _too_big(reply_cap)
                text = json.dumps({c: _json_value(v) for c, v in zip(columns, row)})
                size += len(text) + 1  # ASCII (json.dumps escapes the rest): characters are bytes
                if size > reply_cap:
                    raise _too_big(reply_cap)
                rows.append(text)
    except duckdb.InterruptException:
        raise timed_out from None
    except duckdb.Error as e:
        raise CoralError(f"query failed: {str(e).splitlines()[0]}") from None
    finally:
        timer.cancel()
    return QueryReply(columns, "[" + ",".join(rows) + "]", len(rows), truncated)


def _too_big(reply_cap: int) -> ResourceExhausted:
    return ResourceExhausted(f"query reply exceeds {reply_cap >> 20} MiB: select fewer or smaller columns, "
                             "or add a LIMIT")


def print_query(sql: str, db_path: Path | None, limit: int) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .terminal import safe_text

    columns, rows = run_readonly(sql, db_path, limit)
    # Values are data (scripts write many of them): Text, never markup, with
    # control characters shown escaped.
    table = Table(show_edge=False)
    for column in columns:
        table.add_column(Text(safe_text(column)))
    for row in rows:
        table.add_row(*(Text("NULL" if v is None else safe_text(str(v))) for v in row))
    Console().print(table)
