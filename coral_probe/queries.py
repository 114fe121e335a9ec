"""Read-only SQL over the agent's DuckDB, as the CLI and scripts see it."""

import threading
from pathlib import Path

import duckdb

from .errors import CoralError
from .paths import default_db_path
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


def sdk_query(cur: duckdb.DuckDBPyConnection, sql: str, timeout_s: float) -> tuple[list[str], list[tuple], bool]:
    """A script's query: one SELECT, at most ROW_CAP rows, interrupted at the timeout."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise CoralError(f"invalid SQL: {str(e).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise CoralError("db.query takes one read-only SELECT statement")
    body = sql.strip().rstrip(";")
    timer = threading.Timer(timeout_s, cur.interrupt)
    timer.start()
    try:
        # The LIMIT is always there: one past the cap tells whether it cut.
        cursor = cur.execute(f"SELECT * FROM ({body}) AS coral_query LIMIT {ROW_CAP + 1}")
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    except duckdb.InterruptException:
        raise CoralError(f"query timed out after {timeout_s:g}s") from None
    except duckdb.Error as e:
        raise CoralError(f"query failed: {str(e).splitlines()[0]}") from None
    finally:
        timer.cancel()
    return columns, rows[:ROW_CAP], len(rows) > ROW_CAP


def print_query(sql: str, db_path: Path | None, limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    columns, rows = run_readonly(sql, db_path, limit)
    table = Table(*columns, show_edge=False)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    Console().print(table)
