"""A script's db.query on the real DuckDB: one SELECT, a row cap, a byte
cap, a timeout, no file access."""

import json

import pytest

from coral_probe.errors import CoralError, PermissionDenied, ResourceExhausted
from coral_probe.queries import ROW_CAP, sdk_query
from coral_probe.query_scope import QueryScope
from coral_probe.store import Store

SCOPE = QueryScope(script_id="s1", execution_id="e1")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "agent.duckdb")
    yield s
    s.close()


def query(store, sql, timeout_s=10.0, **kw):
    with store.cursor() as cur:
        return sdk_query(cur, sql, SCOPE, timeout_s, **kw)


def test_rows_are_capped_and_the_cut_is_reported(store):
    reply = query(store, "SELECT range AS i FROM range(25000)")
    assert reply.columns == ["i"] and reply.row_count == ROW_CAP == 10_000 and reply.truncated
    assert len(json.loads(reply.rows_json)) == ROW_CAP
    reply = query(store, "SELECT range AS i FROM range(7) ORDER BY i DESC;")
    assert [r["i"] for r in json.loads(reply.rows_json)] == [6, 5, 4, 3, 2, 1, 0] and not reply.truncated


def test_a_trailing_comment_and_timestamptz_columns_are_fine(store):
    reply = query(store, "SELECT now() AS t, 1 AS one -- a comment at the end")
    [row] = json.loads(reply.rows_json)
    assert row["one"] == 1 and row["t"].endswith("+00:00")


def test_the_reply_is_strict_json(store):
    reply = query(store, "SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, 2.5::DOUBLE AS f")
    assert json.loads(reply.rows_json, parse_constant=lambda c: pytest.fail(c)) == [{"n": "nan", "i": "inf", "f": 2.5}]


def test_times_and_intervals_are_text(store):
    reply = query(store, "SELECT TIME '12:34:56' AS t, INTERVAL 90 MINUTE AS i, 12.50::DECIMAL(4,2) AS d")
    assert json.loads(reply.rows_json) == [{"t": "12:34:56", "i": "1:30:00", "d": "12.50"}]


def test_a_reply_past_its_byte_cap_is_refused_before_it_is_built(store):
    with pytest.raises(ResourceExhausted, match=r"query reply exceeds 1 MiB"):
        query(store, "SELECT repeat('x', 100000) AS s FROM range(100)", reply_cap=1 << 20)
    # One value alone past the cap is refused too (before it is JSON-encoded).
    with pytest.raises(ResourceExhausted):
        query(store, "SELECT repeat('x', 2000000) AS s", reply_cap=1 << 20)
    assert query(store, "SELECT repeat('x', 1000) AS s FROM range(100)", reply_cap=1 << 20).row_count == 100


def test_a_slow_query_is_interrupted_at_its_timeout(store):
    with pytest.raises(CoralError, match=r"query timed out after 0.2s"):
        query(store, "SELECT count(*) FROM range(1000000000000) a WHERE a.range % 7 = 3", 0.2)


def test_the_timeout_covers_fetching_and_encoding_too(store):
    # DuckDB answers at once; turning 10M list items into JSON takes seconds.
    with pytest.raises(CoralError, match=r"query timed out after 0.2s"):
        query(store, "SELECT range(1000) AS l FROM range(10000)", 0.2, reply_cap=1 << 40)


@pytest.mark.parametrize("sql", ["DELETE FROM probe_events", "INSERT INTO scripts VALUES (1)",
                                 "SELECT 1; DROP TABLE probe_events", "SET threads = 8",
                                 "COPY probe_events TO '/tmp/x.csv'", "ATTACH '/tmp/other.duckdb'"])
def test_only_one_select_is_accepted(store, sql):
    with pytest.raises(CoralError, match="one read-only SELECT"):
        query(store, sql, 5)


def test_files_are_out_of_reach_through_sql(store):
    with pytest.raises(PermissionDenied, match=r"table function read_csv\(\)"):
        query(store, "SELECT * FROM read_csv('/etc/passwd')", 5)
