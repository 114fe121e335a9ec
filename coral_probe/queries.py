"""Read-only SQL over the agent's DuckDB, as the CLI and scripts see it."""

from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

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


def print_query(sql: str, db_path: Path | None, limit: int) -> None:
    columns, rows = run_readonly(sql, db_path, limit)
    table = Table(*columns, show_edge=False)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    Console().print(table)
