"""`coral query sql` while `coral agent start` holds the DuckDB file: the query
goes through the agent's QueryService (real gRPC on its Unix socket) and
prints what the same query on the file prints once the agent is gone. The
agent refuses writes in one line and keeps serving, and refuses a value past
its reply cap before it holds it; ListFunctions lists a real target's
functions, program first, and over TCP only targets the agent's
--allow-probe rules allow."""

import os
import subprocess
import time

import grpc
import pytest

from coral_probe.api import client, pb, query_client
from coral_probe.paths import live_agent
from test_agent_bad_input import tcp_port
from test_agent_service import Agent, held_counter
from test_agent_transport import write_token

# Emits rows of known values (the agent stores them), then ends.
EMITS = """
import * as coral from "@coral/sdk";

for (let i = 0; i < 3; i++) {
  await coral.emit("via_agent", { i, label: `row ${i}`, nested: [i, "x"] });
}
console.log("emitted");
"""
# Types `query sql` prints in their own ways, stored rows and literals alike.
QUERIES = [
    "SELECT name, data, severity, timestamp, execution_id IS NOT NULL AS linked FROM emitted_events "
    "WHERE name = 'via_agent' ORDER BY data->>'i'",
    "SELECT 170141183460469231731687303715884105727::HUGEINT AS huge, -9007199254740993 AS past_2_53, "
    "1.50::DECIMAL(4,2) AS dec, 'nan'::DOUBLE AS nan, 2.5::DOUBLE AS half, 'a\\x00b'::BLOB AS blob, "
    "TIMESTAMP_NS '2026-01-02 03:04:05.123456789' AS ns, TIMESTAMP '2026-01-02 03:04:05.5' AS us, "
    "DATE '2026-01-02' AS day, INTERVAL 90 MINUTE AS span, [1, 2] AS list, {'a': 1, 'b': 'two'} AS struct, "
    "NULL AS nothing, true AS yes, 'ünï \"quoted\", comma' AS text",
    "SELECT s.name, count(*) AS emits FROM scripts s JOIN emitted_events e ON e.script_id = s.id GROUP BY 1",
]
FORMATS = [(), ("--json",), ("--csv",)]


def run_emits(agent: Agent) -> str:
    reply = agent.stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
        name="via-agent", code=EMITS, created_by="test_query_via_agent")), timeout=120)
    deadline = time.monotonic() + 120
    while True:
        status = agent.stub.GetScriptStatus(pb.GetScriptStatusRequest(ref=reply.script_id), timeout=30)
        if status.status == pb.SCRIPT_STATUS_COMPLETED:
            return reply.script_id
        assert status.status in (pb.SCRIPT_STATUS_PENDING, pb.SCRIPT_STATUS_RUNNING), status
        assert time.monotonic() < deadline, "the script did not complete"
        time.sleep(0.1)


def test_query_sql_through_the_agent_prints_what_the_file_would(agent, coral):
    run_emits(agent)
    through_agent = {}
    for sql in QUERIES:
        for fmt in FORMATS:
            result = coral.run("query", "sql", *fmt, sql)
            assert result.returncode == 0, result.stderr
            through_agent[sql, fmt] = result.stdout
    table = through_agent[QUERIES[0], ()]
    assert table.count("via_agent") == 3 and "row 2" in table
    json_rows = [line for line in through_agent[QUERIES[0], ("--json",)].splitlines()]
    assert len(json_rows) == 3 and '"data":{"i":0,"label":"row 0","nested":[0,"x"]}' in json_rows[0]
    assert '"linked":true' in json_rows[0]
    assert through_agent[QUERIES[1], ("--json",)].startswith(
        '{"huge":170141183460469231731687303715884105727,"past_2_53":-9007199254740993,"dec":1.50,')
    assert through_agent[QUERIES[2], ("--csv",)] == "name,emits\nvia-agent,3\n"

    assert agent.terminate() == 0
    for (sql, fmt), printed in through_agent.items():
        on_file = coral.run("query", "sql", *fmt, sql)
        assert on_file.returncode == 0, on_file.stderr
        assert printed == on_file.stdout, (sql, fmt)


def test_write_refused_in_one_line_and_the_agent_keeps_serving(agent, coral):
    run_emits(agent)
    for sql, says in [("DELETE FROM emitted_events", "not a DELETE statement"),
                      ("SELECT 1; DROP TABLE scripts", "not 2 statements"),
                      ("SELECT * FROM read_csv('/etc/passwd')", "may not read table function read_csv()"),
                      ("SELECT * FROM main.scripts", "may not read qualified names")]:
        result = coral.run("query", "sql", sql)
        assert result.returncode == 1, (sql, result.stdout)
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1 and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    still = coral.run("query", "sql", "--csv", "SELECT count(*) AS n FROM emitted_events WHERE name = 'via_agent'")
    assert (still.returncode, still.stdout) == (0, "n\n3\n")
    assert agent.proc.poll() is None


def test_row_cap_size_cap_and_a_slow_query(agent, coral):
    capped = coral.run("query", "sql", "--csv", "--limit", "3", "SELECT * FROM range(10) t(i)")
    assert capped.returncode == 0 and capped.stdout == "i\n0\n1\n2\n"
    assert "only the first 3 rows" in capped.stderr
    # Past its deadline the agent interrupts the query: one line, and it serves on.
    with pytest.raises(grpc.RpcError) as info:
        query_client.execute(agent.channel, "SELECT count(*) FROM range(1000000000000) a", max_rows=1,
                             timeout_s=60, query_timeout_ms=500)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert info.value.details() == "query timed out after 0.5s"
    # A reply past its size cap (under gRPC's 4 MiB message limit) is refused, not cut.
    big = coral.run("query", "sql", "SELECT repeat('x', 1000000) AS blob FROM range(5)")
    assert big.returncode == 1 and big.stdout == ""
    assert big.stderr == "coral: query reply exceeds 3 MiB: select fewer or smaller columns, or add a LIMIT\n"
    with pytest.raises(grpc.RpcError) as info:
        query_client.execute(agent.channel, "SELECT 1", max_rows=10_001, timeout_s=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    rows = query_client.execute(agent.channel, "SELECT 42 AS answer", max_rows=0, timeout_s=60)
    assert (rows.columns, rows.rows, rows.cut) == (["answer"], [(42,)], False)


def test_list_functions_of_a_binary_and_of_a_process(agent, targets):
    counter = os.path.realpath(targets["counter"])
    found = query_client.list_functions(agent.channel, binary=counter, pattern="coral_*", timeout_s=60)
    by_name = {f.name: f for f in found.functions}
    assert {"coral_work", "coral_recurse"} <= by_name.keys()
    assert by_name["coral_work"].file == counter
    assert by_name["coral_work"].address > 0 and by_name["coral_work"].size > 0
    assert not found.truncated

    held = subprocess.Popen([counter, "1", "0"], env={**os.environ, "COUNTER_WAIT": "1"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline() == "ready\n"
        listed = query_client.list_functions(agent.channel, pid=held.pid, timeout_s=60, limit=10_000)
        files = [f.file for f in listed.functions]
        # The program first, then the libraries it maps (libc among them).
        assert files[0] == f"/proc/{held.pid}/exe"
        assert "coral_work" in {f.name for f in listed.functions if f.file == files[0]}
        libraries = [f for f in dict.fromkeys(files) if f != files[0]]
        assert any("libc" in os.path.basename(f) for f in libraries), libraries
        assert files == sorted(files, key=lambda f: f != files[0])  # none of the program's after a library's
        few = query_client.list_functions(agent.channel, pid=held.pid, limit=2, timeout_s=60)
        assert len(few.functions) == 2 and few.truncated
    finally:
        held.kill()
        held.wait(30)

    for kwargs, code, says in [
            (dict(binary=counter, pattern="no_such_function"), grpc.StatusCode.NOT_FOUND, "unknown function"),
            (dict(binary="/no/such/binary"), grpc.StatusCode.NOT_FOUND, "binary not found"),
            (dict(), grpc.StatusCode.INVALID_ARGUMENT, "give a binary or a pid"),
            # More could pass gRPC's 4 MiB reply.
            (dict(binary=counter, limit=10_001), grpc.StatusCode.INVALID_ARGUMENT, "limit 10001: at most 10000")]:
        with pytest.raises(grpc.RpcError) as info:
            query_client.list_functions(agent.channel, timeout_s=60, **kwargs)
        assert info.value.code() == code and says in info.value.details(), info.value.details()
    assert agent.proc.poll() is None


def peak_rss_mb(pid: int) -> int:
    """The most memory the process ever held (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        [kib] = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    return int(kib) >> 10


def test_a_huge_value_is_refused_before_the_agent_holds_it(agent):
    query_client.execute(agent.channel, "SELECT repeat('x', 1000) AS warm", max_rows=1, timeout_s=60)
    before = peak_rss_mb(agent.proc.pid)
    with pytest.raises(grpc.RpcError) as info:
        # 150 MB of text: DuckDB builds it, but the agent never copies it into
        # Python (once more as JSON) to find it is too big.
        query_client.execute(agent.channel, "SELECT repeat('x', 150000000) AS s", max_rows=1, timeout_s=120)
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "query reply exceeds 3 MiB: select fewer or smaller columns, or add a LIMIT")
    grown = peak_rss_mb(agent.proc.pid) - before
    assert grown < 400, f"the agent's peak memory grew {grown} MiB"
    rows = query_client.execute(agent.channel, "SELECT strlen(repeat('x', 150000000)) AS n", max_rows=1,
                                timeout_s=120)
    assert rows.rows == [(150_000_000,)]
    assert agent.proc.poll() is None


def test_over_tcp_list_functions_names_only_targets_the_agents_rules_allow(agent_of, targets, tmp_path):
    token = write_token(tmp_path / "token", "query-token")
    agent = agent_of("--listen", "127.0.0.1:0", "--token-file", str(token))  # allows binary:<counter>
    counter = os.path.realpath(targets["counter"])
    other = os.path.realpath(targets["manyfuncs"])
    held = held_counter(targets["counter"], 1)
    try:
        with client.channel(f"127.0.0.1:{tcp_port(agent)}", home=tmp_path, token_file=token) as tcp:
            found = query_client.list_functions(tcp, binary=counter, pattern="coral_*", timeout_s=60)
            assert "coral_work" in {f.name for f in found.functions}
            for kwargs, kind, name in [(dict(binary=other), "binary", other),
                                       (dict(pid=held.pid), "pid", str(held.pid)),
                                       (dict(pid=held.pid, binary=counter), "pid", str(held.pid)),
                                       # Refused like a file that exists: the refusal tells nothing.
                                       (dict(binary="/no/such/binary"), "binary", "/no/such/binary")]:
                with pytest.raises(grpc.RpcError) as info:
                    query_client.list_functions(tcp, timeout_s=60, **kwargs)
                assert (info.value.code(), info.value.details()) == (
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{kind} {name} is not a target a client over TCP may name: no --allow-probe rule of the "
                    f"agent allows it (the operator may add --allow-probe {kind}:{name})")
        # Over the Unix socket (the agent's own user) any target.
        listed = query_client.list_functions(agent.channel, pid=held.pid, pattern="coral_*", timeout_s=60)
        assert "coral_work" in {f.name for f in listed.functions}
        assert query_client.list_functions(agent.channel, binary=other, timeout_s=60).functions
    finally:
        held.kill()
        held.wait(30)
    assert agent.proc.poll() is None


def test_without_an_agent_query_sql_reads_the_file(coral):
    # No agent ever started here: no database either, and the command says so.
    result = coral.run("query", "sql", "SELECT 1")
    assert result.returncode == 2 and "no database at" in result.stderr
    assert live_agent(coral.home) is None
