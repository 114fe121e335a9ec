"""A script's db.query on the real DuckDB: one SELECT, a row cap, a timeout,
no file access."""

import pytest

from coral_probe.errors import CoralError
from coral_probe.queries import ROW_CAP, sdk_query
from coral_probe.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "agent.duckdb")
    yield s
    s.close()


def test_rows_are_capped_and_the_cut_is_reported(store):
    with store.cursor() as cur:
        columns, rows, truncated = sdk_query(cur, "SELECT range AS i FROM range(25000)", 10)
    assert columns == ["i"] and len(rows) == ROW_CAP == 10_000 and truncated
    with store.cursor() as cur:
        _, rows, truncated = sdk_query(cur, "SELECT range AS i FROM range(7) ORDER BY i DESC;", 10)
    assert [r[0] for r in rows] == [6, 5, 4, 3, 2, 1, 0] and not truncated


def test_a_slow_query_is_interrupted_at_its_timeout(store):
    with store.cursor() as cur, pytest.raises(CoralError, match=r"query timed out after 0.2s"):
        sdk_query(cur, "SELECT count(*) FROM range(1000000000000) a WHERE a.range % 7 = 3", 0.2)


@pytest.mark.parametrize("sql", ["DELETE FROM probe_events", "INSERT INTO scripts VALUES (1)",
                                 "SELECT 1; DROP TABLE probe_events", "SET threads = 8",
                                 "COPY probe_events TO '/tmp/x.csv'", "ATTACH '/tmp/other.duckdb'"])
def test_only_one_select_is_accepted(store, sql):
    with store.cursor() as cur, pytest.raises(CoralError, match="one read-only SELECT"):
        sdk_query(cur, sql, 5)


def test_files_are_out_of_reach_through_sql(store):
    with store.cursor() as cur, pytest.raises(CoralError, match="query failed: Permission Error"):
        sdk_query(cur, "SELECT * FROM read_csv('/etc/passwd')", 5)
