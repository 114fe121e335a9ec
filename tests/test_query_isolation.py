"""What a real script reads through db.query, tried as an attacker would:
only its own rows of the script tables and the probe data, never another
run's params, code, logs or emits; replies bounded in bytes; every table of
the schema readable (TIMESTAMPTZ columns, a trailing comment)."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from coral_probe.store import SCHEMA

pytestmark = pytest.mark.bpf
ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "scripts"
SECRET = "hunter2-coral-db-password"
# Every data table; colony_delivery is the agent's own bookkeeping (how far
# its colony acknowledged emits), not data a query reads.
TABLES = [t for t in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA) if t != "colony_delivery"]

# Each of these reaches past the script's own rows on an unguarded agent.
ATTACKS = [
    "SELECT params FROM main.script_executions",
    "SELECT code FROM agent.main.scripts",
    "SELECT * FROM temp.main.scripts",
    "SELECT * FROM memory.main.scripts",
    "SELECT * FROM query('SELECT params FROM main.script_executions')",
    "SELECT * FROM query_table('script_logs')",
    "SELECT * FROM duckdb_tables()",
    "SELECT sql FROM duckdb_views",
    "SELECT sql FROM sqlite_master",
    "SELECT * FROM information_schema.tables",
    "WITH duckdb_views AS (SELECT * FROM duckdb_views) SELECT sql FROM duckdb_views",
    "SELECT (SELECT list(params) FROM main.script_executions) AS p",
    "SELECT line FROM script_logs UNION ALL SELECT line FROM main.script_logs",
    "DESCRIBE script_executions",
    "SELECT * FROM read_text('/etc/hostname')",
]


def run_queries(coral, queries: list[str], *, wrap=lambda cmd: cmd) -> tuple[subprocess.CompletedProcess, list]:
    cmd = wrap(coral.cmd("run", str(SCRIPTS / "isolation_queries.ts"), "--param", "queries=" + json.dumps(queries)))
    result = subprocess.run(cmd, env=coral.env, capture_output=True, text=True, timeout=180)
    rows = coral.query("SELECT data FROM emitted_events WHERE name = 'isolation_results'") if coral.db.exists() else []
    return result, [json.loads(r[0]) for r in rows]


def test_a_script_reads_only_its_own_rows(coral):
    victim = coral.run("run", str(SCRIPTS / "isolation_victim.ts"), "--param", f"db_password={SECRET}")
    assert victim.returncode == 0, victim.stderr
    # The secret is there to steal: in params, logs and emits of the victim's run.
    assert coral.query("SELECT count(*) FROM script_logs WHERE contains(line, ?)", [SECRET]) == [(1,)]
    own = ["SELECT params FROM script_executions", "SELECT name, code FROM scripts",
           "SELECT name FROM emitted_events", "SELECT line FROM script_logs"]
    spy, emitted = run_queries(coral, own + ATTACKS)
    assert spy.returncode == 0, spy.stderr
    [results] = emitted
    seen = json.dumps(results)
    assert SECRET not in seen and "VICTIM-CODE" not in seen, seen
    by_sql = {r["sql"]: r for r in results}
    [execution] = by_sql[own[0]]["rows"]
    assert "queries" in json.loads(execution["params"])  # its own params, and only those
    [script] = by_sql[own[1]]["rows"]
    assert script["name"] == "isolation_queries.ts" and "isolation_results" in script["code"]
    assert by_sql[own[2]]["rows"] == [{"name": "isolation_start"}]
    assert by_sql[own[3]]["rows"] == []  # the victim's log line is not the spy's
    for sql in ATTACKS:
        assert by_sql[sql].get("code") == "PERMISSION_DENIED", (sql, by_sql[sql])


def test_a_huge_reply_is_refused_and_the_agent_lives(coral, memory_cap):
    # 1000 rows of 1 MB: an agent that builds the whole reply needs ~5 GB;
    # this one stops at 16 MiB of JSON (DuckDB's one vector of rows, ~1 GB,
    # is the peak). In a 2 GiB cgroup a regression is OOM-killed, not the host.
    huge = "SELECT repeat('x', 1000000) AS s FROM range(1000)"
    result, emitted = run_queries(coral, [huge, "SELECT 42 AS after"],
                                  wrap=memory_cap(2048 << 20).wrap)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    [[big, after]] = emitted
    assert big["code"] == "RESOURCE_EXHAUSTED" and "16 MiB" in big["message"], big
    assert after["rows"] == [{"after": 42}]  # the agent still answers


def test_every_table_reads_through_db_query_and_coral_query_sql(coral, targets):
    session = coral.run("probe", "attach", "coral_work", "--args", "2", "-o", "jsonl", "--",
                        str(targets["counter"]), "100")
    assert session.returncode == 100 % 7, session.stderr  # the counter's own exit code
    # A trailing comment, and every column of every table (TIMESTAMPTZ ones too).
    queries = [f"SELECT * FROM {table} LIMIT 3 -- every column of {table}" for table in TABLES]
    result, [results] = run_queries(coral, queries + ["SELECT now() AS t -- a comment"])
    assert result.returncode == 0, result.stderr
    failed = [r for r in results if "rows" not in r]
    assert failed == []
    by_table = dict(zip(TABLES, results))
    assert len(by_table["probe_sessions"]["rows"]) == 1
    assert len(by_table["probe_events"]["rows"]) == 3
    assert by_table["emitted_events"]["rows"][0]["name"] == "isolation_start"
    assert by_table["probe_sessions"]["rows"][0]["started_at"].endswith("+00:00")
    for table in TABLES:
        out = coral.run("query", "sql", f"SELECT * FROM {table} -- all of it")
        assert out.returncode == 0, (table, out.stderr)
        assert "coral:" not in out.stderr
