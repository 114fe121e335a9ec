"""Read-only SQL over the agent's DuckDB, as the CLI and scripts see it."""

import csv
import io
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb

from .errors import CoralError, ResourceExhausted, TimedOut
from .paths import default_db_path
from .query_scope import QueryScope, apply_scope, check_statement
from .query_wire import encode_value, scalar_text
from .store import open_readonly


@dataclass(frozen=True)
class ReadRows:
    columns: list[str]
    types: list[str]  # DuckDB's names: BIGINT, TIMESTAMP_NS, JSON, ...
    rows: list[tuple]
    cut: bool  # the query had more rows than the limit


def run_readonly(sql: str, db_path: Path | None, limit: int) -> ReadRows:
    path = db_path or default_db_path()
    if not path.exists():
        raise CoralError(f"no database at {path} yet: run `coral probe attach` first")
    con = open_readonly(path)
    try:
        rel = con.sql(sql)
        if rel is None:
            return ReadRows([], [], [], False)
        columns, types = list(rel.columns), [str(t) for t in rel.types]
        rows = _nanoseconds_as_text(rel, types).limit(limit + 1).fetchall()
        return ReadRows(columns, types, rows[:limit], len(rows) > limit)
    except duckdb.Error as e:
        raise CoralError(f"query failed: {str(e).splitlines()[0]}") from None
    finally:
        con.close()


def _nanoseconds_as_text(rel: duckdb.DuckDBPyRelation, types: list[str]) -> duckdb.DuckDBPyRelation:
    """Python's datetime stops at microseconds and probe_events.timestamp has
    nanoseconds: DuckDB writes those columns as ISO 8601 text. Columns by
    position: a join may give two the same name."""
    if "TIMESTAMP_NS" not in types:
        return rel
    return rel.project(", ".join(f"strftime(#{i}, '%Y-%m-%dT%H:%M:%S.%n')" if t == "TIMESTAMP_NS"
                                 else f"#{i}" for i, t in enumerate(types, 1)))


ROW_CAP = 10_000
REPLY_CAP_BYTES = 16 << 20
# Rows converted to Python at a time: the byte cap and the deadline are
# checked between them, so a reply stops growing soon after a bound.
FETCH_ROWS = 32


class QueryTimedOut(TimedOut):
    """A capped query ran past its deadline and was interrupted."""


@dataclass(frozen=True)
class CappedRows:
    columns: list[str]
    types: list[str]  # DuckDB's names, as the query gives them (TIMESTAMP_NS travels as text)
    rows_json: str  # a JSON array of the encoded rows
    row_count: int
    truncated: bool  # more than max_rows rows


def read_capped(cur: duckdb.DuckDBPyConnection, sql: str, *, scope: QueryScope | None,
                encode: Callable[[list[str], tuple], str], max_rows: int, timeout_s: float, reply_cap: int,
                who: str) -> CappedRows:
    """One read-only SELECT on `cur` (a cursor of its own) over what `scope`
    lets it see (None: every row), at most `max_rows` rows, each as
    `encode(columns, row)` gives it (ASCII JSON), and `reply_cap` bytes of
    them, all of it (planning, running, fetching, encoding) within
    `timeout_s`. `who` names the asker in refusals."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise CoralError(f"invalid SQL: {str(e).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        what = f"a {statements[0].type.name} statement" if len(statements) == 1 else f"{len(statements)} statements"
        raise CoralError(f"{who} takes one read-only SELECT statement, not {what}")
    deadline = time.monotonic() + timeout_s
    timed_out = QueryTimedOut(f"query timed out after {timeout_s:g}s")
    timer = threading.Timer(timeout_s, cur.interrupt)
    timer.start()
    try:
        if scope is not None:
            apply_scope(cur, scope)
        # The text checked is the text run: no wrapping that a trailing
        # `-- comment` could break or a crafted statement escape.
        check_statement(cur, sql, who=who)
        cur.complete()  # the check's own result, before the connection runs another
        rel = cur.sql(sql)
        columns, types = list(rel.columns), [str(t) for t in rel.types]
        rows: list[str] = []
        size = 2  # the brackets
        truncated = False
        fetched = _sized(_nanoseconds_as_text(rel, types), types, reply_cap)
        for *row, floor in fetched.limit(max_rows + 1).iter_rows(batch_size=FETCH_ROWS):
            if len(rows) == max_rows:
                truncated = True
                break
            if time.monotonic() > deadline:
                raise timed_out
            if size + floor > reply_cap:
                raise _too_big(reply_cap)
            text = encode(columns, tuple(row))
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
    return CappedRows(columns, types, "[" + ",".join(rows) + "]", len(rows), truncated)


def _sized(rel: duckdb.DuckDBPyRelation, types: list[str], reply_cap: int) -> duckdb.DuckDBPyRelation:
    """`rel` and one more column: the bytes the row's JSON takes at least,
    counted by DuckDB. A value past `reply_cap` alone comes as NULL: a huge
    value is refused before Python holds a copy of it (and another as JSON)."""
    sizes = [_size_of(f"#{i}", t) for i, t in enumerate(types, 1)]
    kept = [f"#{i}" if size == "0" else f"CASE WHEN {size} > {reply_cap} THEN NULL ELSE #{i} END"
            for i, size in enumerate(sizes, 1)]
    return rel.project(", ".join([*kept, " + ".join(f"coalesce({size}, 0)" for size in sizes)]))


def _size_of(column: str, kind: str) -> str:
    """SQL for the bytes the JSON of a value takes at least: text as long as
    its UTF-8 (json.dumps escapes the rest longer), a BLOB as hex; other
    scalars are small, "0"."""
    if kind in ("VARCHAR", "JSON", "TIMESTAMP_NS"):  # TIMESTAMP_NS: as text by now
        return f"strlen({column}::VARCHAR)"
    if kind == "BLOB":
        return f"2 * octet_length({column})"
    if kind.endswith("]") or kind.startswith(("STRUCT", "MAP", "UNION")):  # lists, arrays and the like
        return f"strlen({column}::VARCHAR)"
    return "0"


def _too_big(reply_cap: int) -> ResourceExhausted:
    return ResourceExhausted(f"query reply exceeds {reply_cap >> 20} MiB: select fewer or smaller columns, "
                             "or add a LIMIT")


def sdk_query(cur: duckdb.DuckDBPyConnection, sql: str, scope: QueryScope, timeout_s: float,
              reply_cap: int = REPLY_CAP_BYTES) -> CappedRows:
    """A script's db.query: what `scope` lets it see, at most ROW_CAP rows as
    JSON objects (integers past 2^53 as strings, for JavaScript)."""
    return read_capped(cur, sql, scope=scope, encode=_json_object, max_rows=ROW_CAP, timeout_s=timeout_s,
                       reply_cap=reply_cap, who="db.query")


def _json_object(columns: list[str], row: tuple) -> str:
    return json.dumps({c: encode_value(v, exact_ints=False) for c, v in zip(columns, row)})


def print_query(sql: str, db_path: Path | None, limit: int, fmt: str = "table") -> None:
    """`fmt`: "table" for people, "json" (JSON lines) or "csv" for programs."""
    print_rows(run_readonly(sql, db_path, limit), limit, fmt)


def print_rows(read: ReadRows, limit: int, fmt: str = "table") -> None:
    """Rows read from the file or through a running agent (api/query_client.py)."""
    if fmt == "json":
        _print_json_lines(read)
    elif fmt == "csv":
        _print_csv(read)
    else:
        _print_table(read)
    if read.cut:
        # On stderr, so the rows on stdout stay parseable; said at all, so a
        # short export is never mistaken for the whole answer.
        print(f"coral: only the first {limit} rows were printed (--limit, at most 10000)", file=sys.stderr)


def _print_table(read: ReadRows) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .terminal import safe_text

    # Values are data (scripts write many of them): Text, never markup, with
    # control characters shown escaped.
    table = Table(show_edge=False)
    for column in read.columns:
        table.add_column(Text(safe_text(column)))
    for row in read.rows:
        table.add_row(*(Text("NULL" if v is None else safe_text(str(v))) for v in row))
    console = Console()
    if not console.is_terminal:
        # Rich assumes 80 columns for a pipe or a file and would cut the cells
        # to fit: there every row is printed whole, as wide as it is.
        console = Console(width=UNBOUNDED_WIDTH)
    console.print(table)


UNBOUNDED_WIDTH = 1 << 20


def _print_json_lines(read: ReadRows) -> None:
    # One object per line, not one array: jq reads a stream of values as it
    # comes, `head`/`grep`/`wc -l` work per row, and DuckDB's read_json takes
    # it back as is (newline-delimited), like `probe attach -o jsonl`.
    keys = [json.dumps(k) for k in _unique_names(read.columns)]
    is_json = [t == "JSON" for t in read.types]
    out = sys.stdout
    for row in read.rows:
        out.write("{" + ",".join(f"{k}:{_json_text(json.loads(v, parse_float=Decimal) if j and v is not None else v)}"
                                 for k, j, v in zip(keys, is_json, row)) + "}\n")


def _unique_names(columns: list[str]) -> list[str]:
    """Keys of a JSON object must differ (a join's two `session_id`s): later
    ones get `_1`, `_2`, as DuckDB names them in a subquery."""
    taken: set[str] = set()
    names = []
    for column in columns:
        name, n = column, 0
        while name in taken:
            n += 1
            name = f"{column}_{n}"
        taken.add(name)
        names.append(name)
    return names


def _json_text(value) -> str:
    """A value as JSON text. Integers stay exact (BIGINT, HUGEINT: Python's
    json writes every digit) and DECIMALs stay numbers; strings are written
    ASCII-only, escapes JSON's own, so a terminal showing them is safe and a
    parser gets every character back."""
    if value is None or isinstance(value, (bool, int, str)):
        return json.dumps(value)
    if isinstance(value, float):
        # JSON has no NaN or Infinity: strings, as db.query replies them.
        return json.dumps(value if math.isfinite(value) else str(value))
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):  # STRUCT, MAP (keys as text)
        return "{" + ",".join(f"{json.dumps(str(k))}:{_json_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(scalar_text(value))


def _print_csv(read: ReadRows) -> None:
    from .terminal import safe_text

    # The data as it is for a pipe or a file; escaped only when a terminal
    # would act on its control characters instead of showing them.
    shown = safe_text if sys.stdout.isatty() else str
    sys.stdout.flush()
    # UTF-8 whatever the locale: what a program reads back is the stored text.
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        # "\n" rather than RFC 4180's "\r\n": Unix tools read lines; every
        # CSV reader takes either. Newlines inside values are quoted, kept.
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([shown(c) for c in read.columns])
        for row in read.rows:
            writer.writerow([shown(_csv_text(v)) for v in row])
        out.flush()
    finally:
        out.detach()


def _csv_text(value) -> str:
    """NULL is an empty field; lists and structs are their JSON text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return _json_text(value)
    return scalar_text(value)
