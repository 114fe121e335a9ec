"""`coral query sql` for programs: --json (JSON lines) and --csv keep the
stored values (exact integers, nanosecond timestamps, lists, NULL, hostile
text), and a table sent to a pipe is printed whole, not cut to 80 columns."""

import csv
import io
import json
import subprocess
from datetime import datetime

import pytest

from coral_probe.store import Store

# Stored by a script: it must come back byte for byte from --csv and --json.
HOSTILE = 'a\x1b[31m,"q"\nline2\r\n\u202e é\t漢 [bold]x[/bold]'
BIG = 2**53 + 1  # a BIGINT a double would round
JOIN = ("SELECT * FROM probe_events e JOIN probe_sessions s ON e.session_id = s.session_id "
        "ORDER BY e.timestamp")


@pytest.fixture
def db(coral):
    store = Store(coral.db)
    try:
        store.emit("hostile", json.dumps({"text": HOSTILE, "n": 12345678901234567890}), "info", None, None)
        store.con.execute("INSERT INTO probe_sessions (session_id, started_at, probe_type, target, pid, functions,"
                          " hits) VALUES ('s1', now(), 'uprobe', '/bin/x', 42, ['f', 'g'], ?)", [BIG])
        store.con.execute("INSERT INTO probe_events VALUES ('s1', TIMESTAMP_NS '2024-05-06 07:08:09.123456789',"
                          " 'uprobe', 'f', '/bin/x', 1, 2, 'c', ?, [1, -2], NULL)", [BIG])
        store.con.execute("INSERT INTO probe_events SELECT 's1', TIMESTAMP_NS '2024-05-06 07:08:10', 'uprobe', 'g',"
                          " '/bin/x', 1, 2, 'c', 5, [], 7 FROM range(3)")
    finally:
        store.close()
    return coral


def run_bytes(coral, *args):
    # Bytes: text mode would turn the stored "\r\n" into "\n".
    return subprocess.run(coral.cmd("query", "sql", *args), env=coral.env, capture_output=True, timeout=120)


def test_json_lines_keep_every_type(db):
    out = run_bytes(db, "--json", JOIN)
    assert out.returncode == 0 and out.stderr == b"", out.stderr
    assert out.stdout.isascii()  # JSON's own escapes: safe on a terminal, exact once parsed
    rows = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert len(rows) == 4
    first = rows[0]
    assert first["timestamp"] == "2024-05-06T07:08:09.123456789"
    assert first["duration_ns"] == BIG and first["hits"] == BIG
    assert first["args"] == [1, -2] and first["functions"] == ["f", "g"] and rows[1]["args"] == []
    assert first["return_value"] is None and rows[1]["return_value"] == 7
    # A join's second session_id and pid are kept under their own keys.
    assert first["session_id_1"] == "s1" and first["pid"] == 1 and first["pid_1"] == 42
    assert datetime.fromisoformat(first["started_at"]).utcoffset() is not None

    out = run_bytes(db, "--json", "SELECT data, data->>'text' AS text, 1.50 AS d FROM emitted_events")
    [row] = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert row == {"data": {"text": HOSTILE, "n": 12345678901234567890}, "text": HOSTILE, "d": 1.5}


def test_csv_has_a_header_and_the_stored_text(db):
    out = run_bytes(db, "--csv", "SELECT name, data->>'text' AS text, NULL AS nothing, [1, 2] AS l, "
                                 "TIMESTAMP_NS '2024-05-06 07:08:09.000000001' AS t FROM emitted_events")
    assert out.returncode == 0 and out.stderr == b"", out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout.decode("utf-8"), newline="")))
    assert rows == [["name", "text", "nothing", "l", "t"],
                    ["hostile", HOSTILE, "", "[1,2]", "2024-05-06T07:08:09.000000001"]]

    rows = list(csv.reader(io.StringIO(run_bytes(db, "--csv", JOIN).stdout.decode(), newline="")))
    assert len(rows) == 5 and rows[0].count("session_id") == 2
    assert rows[1][rows[0].index("duration_ns")] == str(BIG)


def test_json_and_csv_together_are_refused_in_one_line(db):
    out = db.run("query", "sql", "--json", "--csv", "SELECT 1")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "coral: --json and --csv are mutually exclusive\n"


def test_a_table_sent_to_a_pipe_is_not_cut_to_80_columns(db):
    db.env.pop("COLUMNS", None)
    long = "x" * 300
    out = db.run("query", "sql", f"SELECT '{long}' AS long_value, function_name, duration_ns FROM probe_events")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if long in line]
    # Each row on one line, its last column (duration_ns) included.
    assert sorted(line.split()[-1] for line in lines) == ["5", "5", "5", str(BIG)], out.stdout


def test_rows_left_out_by_the_limit_are_said_on_stderr(db):
    out = db.run("query", "sql", "--json", "--limit", "3", "SELECT range AS i FROM range(5)")
    assert out.returncode == 0
    assert [json.loads(line)["i"] for line in out.stdout.splitlines()] == [0, 1, 2]
    assert out.stderr == "coral: only the first 3 rows were printed (--limit, at most 10000)\n"
    out = db.run("query", "sql", "--json", "--limit", "5", "SELECT range AS i FROM range(5)")
    assert out.returncode == 0 and out.stderr == "" and len(out.stdout.splitlines()) == 5


def test_a_reader_that_stops_early_is_not_an_error(db):
    # 2 MB of CSV: far past a pipe's buffer, so coral writes after the close.
    proc = subprocess.Popen(db.cmd("query", "sql", "--csv", "--limit", "10000",
                                   "SELECT repeat('y', 200) AS y FROM range(10000)"),
                            env=db.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"y\n"
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""
