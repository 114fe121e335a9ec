"""What a script's db.query may read: its own rows of the script tables and
the probe data the agent holds, never another script's code, params, logs
or emits.

DuckDB has no row-level security. Each query gets, on its own cursor, temp
views named like the script tables that keep only the script's rows (the
temp schema shadows main for unqualified names), and its parsed statement
may name only those tables, unqualified, plus a few table functions: a
qualified name (main.scripts, agent.main.scripts) would reach past the
views, `query()`/`query_table()` run arbitrary SQL, and catalog views and
functions (duckdb_tables, information_schema) describe everything."""

import json
from dataclasses import dataclass

from .errors import CoralError, PermissionDenied

# Filtered to the script's own rows: table -> (column, QueryScope field).
OWN_ROWS = {
    "scripts": ("id", "script_id"),
    "script_executions": ("execution_id", "execution_id"),
    "script_logs": ("execution_id", "execution_id"),
    "emitted_events": ("execution_id", "execution_id"),
}
# The probe data: every script may read it whole.
SHARED = frozenset({"probe_sessions", "probe_events", "system_metrics_local"})
TABLES = SHARED | OWN_ROWS.keys()
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
# FROM items that only combine what the checks below already allow; others
# (SHOW_REF of DESCRIBE/SHOW, COLUMN_DATA, ...) read what they like.
TABLE_REFS = frozenset({"BASE_TABLE", "TABLE_FUNCTION", "SUBQUERY", "JOIN", "EXPRESSION_LIST", "EMPTY", "PIVOT"})


@dataclass(frozen=True)
class QueryScope:
    script_id: str
    execution_id: str


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply_scope(cur, scope: QueryScope) -> None:
    """Temp views on `cur` (a cursor of its own, closed after the query)."""
    database = _identifier(cur.execute("SELECT current_database()").fetchone()[0])
    for table, (column, field) in OWN_ROWS.items():
        # Fully qualified: inside a temp view, main.x would be temp.main.x, the view itself.
        cur.execute(f"CREATE TEMP VIEW {table} AS SELECT * FROM {database}.main.{table}"
                    f" WHERE {column} = {_literal(getattr(scope, field))}")


def check_statement(cur, sql: str, who: str = "db.query", tables: frozenset[str] = TABLES) -> None:
    """Refuses a statement naming anything but `tables` (the scoped ones by
    default; the colony passes its own) (PermissionDenied); `who` names the
    asker in the message."""
    parsed = json.loads(cur.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if parsed.get("error") or len(parsed.get("statements", [])) != 1:
        raise CoralError(f"{who} takes one read-only SELECT statement")
    try:
        _walk(parsed["statements"][0], frozenset(), tables)
    except _Refused as e:
        raise PermissionDenied(f"{who} may not read {e}: it reads only the tables {', '.join(sorted(tables))}"
                               f" (unqualified) and the table functions "
                               f"{', '.join(f'{f}()' for f in sorted(TABLE_FUNCTIONS))}") from None


class _Refused(Exception):
    """What the walk found that may not be read (worded by check_statement)."""


def _refuse(what: str) -> None:
    raise _Refused(what)


def _walk(node, ctes: frozenset[str], tables: frozenset[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables)
        return
    if not isinstance(node, dict):
        return
    entries = (node.get("cte_map") or {}).get("map") or []
    for entry in entries:
        # A CTE's body sees only the CTEs before it: `WITH duckdb_tables AS
        # (SELECT * FROM duckdb_tables)` reads the catalog view in its body.
        _walk(entry.get("value"), ctes, tables)
        ctes = ctes | {str(entry.get("key", "")).lower()}
    if node.get("type") == "RECURSIVE_CTE_NODE":
        ctes = ctes | {str(node.get("cte_name", "")).lower()}
    _check_node(node, ctes, tables)
    for key, value in node.items():
        if key != "cte_map":
            _walk(value, ctes, tables)


def _check_node(node: dict, ctes: frozenset[str], tables: frozenset[str]) -> None:
    kind = node.get("type")
    # Expressions have a class, query nodes modifiers; FROM items neither.
    is_table_ref = ("class" not in node and "modifiers" not in node
                    and {"alias", "sample", "query_location"} <= node.keys())
    if is_table_ref and kind not in TABLE_REFS:
        _refuse(f"a {kind} (DESCRIBE, SHOW and the like)")
    if "table_name" in node:
        name = str(node["table_name"])
        if node.get("schema_name") or node.get("catalog_name"):
            qualified = ".".join(filter(None, (node.get("catalog_name"), node.get("schema_name"), name)))
            _refuse(f"qualified names ({qualified})")
        if name.lower() not in tables and name.lower() not in ctes:
            _refuse(f"table {name}")
    if node.get("class") == "FUNCTION" and (node.get("schema") or node.get("catalog")):
        _refuse(f"qualified functions ({node.get('function_name')})")
    if kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        if str(function.get("function_name", "")).lower() not in TABLE_FUNCTIONS:
            _refuse(f"table function {function.get('function_name')}()")
