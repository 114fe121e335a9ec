"""`coral query services|metrics|traces|sql|agents` against real data: two
agents with CORAL_HOMEs of their own, each recording the probe sessions of
`coral probe attach` (real uprobes on the counter target), and a real
`coral colony start` over them. Every verb in --json and as a table,
through the local agent (the default), `--agent` (a socket, and TCP with a
token), `--colony`, the local colony (the default where no agent runs) and
the local DuckDB file (the default where neither runs). The expected values
are the agents' own rows, read with SQL through them."""

import math
import subprocess

import pytest

from agents import Agent
from colonies import Colony
from conftest import Coral, jsonl
from coral_probe.api import query_client
from coral_probe.durations import format_ns
from test_agent_bad_input import tcp_port
from test_agent_transport import write_token

pytestmark = pytest.mark.bpf

CALLS = {"a1": 20, "a2": 30}  # calls of coral_work each agent's workload makes; every 10th sleeps 30 ms
SLOW_EVERY, SLOW_US = 10, 30_000
THRESHOLD_NS = 10_000_000
SKETCH_ERROR = 0.01  # the agents' DDSketch (sketch.py)


def home(base, name: str) -> Coral:
    path = base / name
    path.mkdir()
    return Coral(path)


def socket_of(agent: Agent) -> str:
    return f"unix:{agent.coral.home}/agent.sock"


def workload(agent: Agent, counter, calls: int) -> None:
    """`coral probe attach` on the agent's home: the session is recorded by the agent."""
    result = agent.coral.run("probe", "attach", "-o", "jsonl", "coral_work", "--args", "2", "--",
                             str(counter), str(calls), "0", str(SLOW_EVERY), str(SLOW_US))
    assert len(jsonl(result.stdout)) == calls, result.stderr
    assert "(recorded by the agent)" in result.stderr


def rows(agent: Agent, sql: str) -> list[tuple]:
    return query_client.execute(agent.channel, sql, max_rows=10_000, timeout_s=60).rows


class Fleet:
    def __init__(self, base, counter):
        self.token = write_token(base / "token", "query-secret")
        self.agents = {
            "a1": Agent(home(base, "a1"), "--id", "a1", "--service", f"payments={counter}",
                        "--listen", "127.0.0.1:0", "--token-file", str(self.token)),
            "a2": Agent(home(base, "a2"), "--id", "a2", "--service", f"payments={counter}")}
        for agent_id, agent in self.agents.items():
            workload(agent, counter, CALLS[agent_id])
        self.colony = Colony(home(base, "colony"), {agent_id: socket_of(a) for agent_id, a in self.agents.items()})
        self.client = home(base, "client")  # neither an agent nor a colony serves it, nor has it a file
        # What the agents recorded: (agent, timestamp ns, duration ns, return value)
        self.calls = [(agent_id, *row) for agent_id, agent in self.agents.items() for row in rows(
            agent, "SELECT epoch_ns(timestamp), duration_ns, return_value FROM probe_events"
                   " WHERE function_name = 'coral_work'")]

    @property
    def colony_address(self) -> str:
        return f"unix:{self.colony.socket}"

    def stop(self) -> None:
        self.colony.stop()
        for agent in self.agents.values():
            agent.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, targets):
    started = Fleet(tmp_path_factory.mktemp("fleet"), targets["counter"])
    yield started
    started.stop()


def answered(coral: Coral, *args: str, stderr: str = "") -> tuple[list[dict], str]:
    """(the --json records, the table) of one command, both exiting 0 with `stderr`."""
    as_json, table = coral.run("query", *args, "--json"), coral.run("query", *args)
    for result in (as_json, table):
        assert (result.returncode, result.stderr) == (0, stderr), result.stderr
    return jsonl(as_json.stdout), table.stdout


def refused(result: subprocess.CompletedProcess, code: int = 1) -> str:
    assert result.returncode == code and not result.stdout, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("coral: ")
    return line


def percentile_of(durations: list[int], q: float) -> int:
    """The value of rank floor(q (n - 1)), which the sketch answers within its error."""
    return sorted(durations)[math.floor(q * (len(durations) - 1))]


def test_services_from_the_local_agent_an_address_and_the_colony(fleet):
    a1 = fleet.agents["a1"]
    records, table = answered(a1.coral, "services")  # the agent serving this home
    assert [(r["service"], r["agent_id"], r["instances"], r["events"]) for r in records] == [
        ("payments", "a1", 1, CALLS["a1"])]
    assert records[0]["last_seen"].endswith("Z") and records[0]["binaries"]
    assert "payments" in table and "a1" in table and "INSTANCES" in table
    by_tcp, _ = answered(fleet.client, "services", "--agent", f"127.0.0.1:{tcp_port(a1)}",
                         "--token-file", str(fleet.token))
    assert by_tcp == records
    for where in (("--colony", fleet.colony_address), ()):
        coral = fleet.client if where else fleet.colony.coral  # the colony serving its home, no agent there
        records, table = answered(coral, "services", *where)
        assert sorted((r["agent_id"], r["events"]) for r in records) == [("a1", CALLS["a1"]), ("a2", CALLS["a2"])]
        assert "a1" in table and "a2" in table


def test_a_percentile_through_the_colony_is_that_of_every_agents_calls(fleet):
    durations = {agent_id: [d for a, _, d, _ in fleet.calls if a == agent_id] for agent_id in CALLS}
    assert {agent_id: len(d) for agent_id, d in durations.items()} == CALLS
    args = ("metrics", "payments", "--function", "coral_work")
    for p in (50, 99):
        [one], table = answered(fleet.client, *args, "--percentile", str(p), "--agent", socket_of(fleet.agents["a1"]))
        exact = percentile_of(durations["a1"], p / 100)
        assert one["count"] == CALLS["a1"] and abs(one["value_ns"] - exact) <= SKETCH_ERROR * exact + 1
        assert f"P{p}" in table and format_ns(one["value_ns"]) in table

        [merged], table = answered(fleet.client, *args, "--percentile", str(p), "--colony", fleet.colony_address)
        exact = percentile_of(durations["a1"] + durations["a2"], p / 100)
        assert merged["count"] == sum(CALLS.values())
        assert abs(merged["value_ns"] - exact) <= SKETCH_ERROR * exact + 1, (merged, exact)
        assert merged["relative_accuracy"] == SKETCH_ERROR
        assert format_ns(merged["value_ns"]) in table


def test_the_error_rate_of_every_function_and_of_one(fleet):
    errors = sum(1 for *_, ret in fleet.calls if ret != 0)
    for function in ((), ("--function", "coral_work")):
        [rate], table = answered(fleet.client, "metrics", "payments", "--error-rate", "--window", "5m", *function,
                                 "--colony", fleet.colony_address)
        assert rate == {"service": "payments", "function": function[1] if function else None,
                        "error_rate": errors / len(fleet.calls), "errors": errors, "calls": len(fleet.calls)}
        assert f"{errors / len(fleet.calls):.2%}" in table and ("(all)" in table) == (not function)


def test_slow_traces_are_the_slow_calls_of_both_agents(fleet):
    slow = sorted(((a, ts, d) for a, ts, d, _ in fleet.calls if d >= THRESHOLD_NS), key=lambda c: -c[2])
    assert {a for a, *_ in slow} == {"a1", "a2"}
    records, table = answered(fleet.client, "traces", "payments", "--slow", "--threshold", "10ms", "--limit", "100",
                              "--colony", fleet.colony_address)
    assert [(r["agent_id"], r["timestamp_ns"], r["duration_ns"]) for r in records] == slow
    assert all(r["service"] == "payments" and r["function"] == "coral_work" and r["trace_id"] for r in records)
    assert all(format_ns(d) in table for *_, d in slow) and "a1" in table and "a2" in table


def test_error_traces_newest_first_within_the_limit(fleet):
    newest = sorted(((ts, a) for a, ts, _, ret in fleet.calls if ret != 0), reverse=True)[:5]
    records, _ = answered(fleet.client, "traces", "payments", "--errors", "--limit", "5",
                          "--colony", fleet.colony_address,
                          stderr=f"coral: 5 of {len(fleet.calls)} matching calls shown (--limit)\n")
    assert [(r["timestamp_ns"], r["agent_id"]) for r in records] == newest
    assert all(r["return_value"] != 0 and len(r["args"]) == 2 for r in records)


def test_sql_through_the_colony_has_an_agent_id_column(fleet):
    sql = "SELECT count(*) AS calls FROM probe_events"
    records, table = answered(fleet.client, "sql", sql, "--colony", fleet.colony_address)
    assert sorted(records, key=lambda r: r["agent_id"]) == [{"agent_id": a, "calls": n} for a, n in CALLS.items()]
    assert "agent_id" in table
    records, _ = answered(fleet.agents["a2"].coral, "sql", sql)  # the agent serving the home
    assert records == [{"calls": CALLS["a2"]}]


def test_agents_of_the_colony_and_an_agent_itself(fleet):
    records, table = answered(fleet.client, "agents", "--colony", fleet.colony_address)
    assert [(r["id"], r["address"], r["reachable"], r["error"]) for r in records] == [
        (a, socket_of(agent), True, None) for a, agent in fleet.agents.items()]
    assert all(r["version"] and r["last_seen"] for r in records)
    assert "REACHABLE" in table and "yes" in table
    [me], _ = answered(fleet.client, "agents", "--agent", socket_of(fleet.agents["a1"]))
    assert (me["id"], me["reachable"], me["address"]) == ("a1", True, None)


def test_an_unknown_service_is_one_line_naming_the_known_ones(fleet):
    for where in (("--agent", socket_of(fleet.agents["a1"])), ("--colony", fleet.colony_address)):
        for verb in (("metrics", "billing", "--error-rate"), ("traces", "billing", "--slow"),
                     ("metrics", "billing", "--function", "f", "--percentile", "99")):
            for output in ((), ("--json",)):
                line = refused(fleet.client.run("query", *verb, *where, *output))
                assert "billing" in line and "payments" in line, line
    line = refused(fleet.client.run("query", "sql", "DELETE FROM probe_events", "--colony", fleet.colony_address))
    assert "SELECT" in line


def test_a_stopped_agent_makes_a_partial_answer_that_names_it(fleet, tmp_path, targets):
    a3 = Agent(home(tmp_path, "a3"), "--id", "a3", "--service", f"payments={targets['counter']}")
    workload(a3, targets["counter"], 10)
    colony = Colony(home(tmp_path, "colony"), {"a1": socket_of(fleet.agents["a1"]), "a3": socket_of(a3)})
    try:
        a3.stop()
        where = ("--colony", f"unix:{colony.socket}")
        for args in (("services",), ("metrics", "payments", "--function", "coral_work", "--percentile", "50"),
                     ("traces", "payments", "--slow", "--limit", "100"),
                     ("sql", "SELECT count(*) AS n FROM probe_events")):
            as_json = fleet.client.run("query", *args, *where, "--json")
            table = fleet.client.run("query", *args, *where)
            for result in (as_json, table):
                assert result.returncode == 0, result.stderr
                [line] = result.stderr.splitlines()
                assert line.startswith("coral: no answer from a3 (") and line.endswith(")"), line
            records = jsonl(as_json.stdout)
            assert records and {r.get("agent_id", "a1") for r in records} == {"a1"}, records
            if args[0] == "metrics":
                assert records[0]["count"] == CALLS["a1"]
    finally:
        colony.stop()


def test_the_local_file_answers_as_its_agent_did(tmp_path, targets):
    agent = Agent(home(tmp_path, "a4"), "--service", f"payments={targets['counter']}")
    workload(agent, targets["counter"], 20)
    asks = [("services",), ("metrics", "payments", "--function", "coral_work", "--percentile", "90"),
            ("metrics", "payments", "--error-rate"), ("traces", "payments", "--slow", "--threshold", "10ms"),
            ("traces", "payments", "--errors", "--limit", "100"), ("sql", "SELECT count(*) AS n FROM probe_events")]
    through_agent = [answered(agent.coral, *args)[0] for args in asks]
    assert agent.terminate() == 0
    from_file = [answered(agent.coral, *args)[0] for args in asks]
    assert from_file == through_agent  # the agent's default id is the host's name, as the file's answers say
    line = refused(agent.coral.run("query", "agents"), 2)
    assert line.startswith("coral: no agent or colony serves $CORAL_HOME")


@pytest.mark.parametrize("args, message", [
    (("metrics", "s", "--percentile", "99"), "--percentile needs --function"),
    (("metrics", "s", "--function", "f"), "give one of --percentile P or --error-rate"),
    (("metrics", "s", "--function", "f", "--percentile", "99", "--error-rate"), "give one of"),
    (("metrics", "s", "--error-rate", "--window", "soon"), "invalid --window 'soon'"),
    (("traces", "s", "--slow", "--errors"), "give one of --slow or --errors"),
    (("traces", "s", "--errors", "--threshold", "1s"), "--threshold goes with --slow"),
    (("services", "--agent", "unix:/a", "--colony", "unix:/c"), "--agent and --colony exclude each other"),
    (("services", "--colony", "nowhere"), "--colony nowhere: expected unix:PATH or HOST:PORT"),
    (("services", "--token-file", "t"), "--token-file goes with --agent or --colony"),
    (("sql", "SELECT 1", "--db", "x.duckdb", "--agent", "unix:/a"), "--db reads a file here"),
])
def test_bad_input_is_one_line(coral, args, message):
    line = refused(coral.run("query", *args), 2)
    assert message in line, line


def test_nobody_there_is_one_line(coral, tmp_path):
    assert refused(coral.run("query", "services"), 2) == (
        f"coral: no database at {coral.db} yet: run `coral probe attach` first")
    assert refused(coral.run("query", "services", "--agent", f"unix:{tmp_path}/none.sock")) == (
        f"coral: no agent at unix:{tmp_path}/none.sock (start one with `coral agent start`)")
    assert refused(coral.run("query", "traces", "s", "--errors", "--colony", f"unix:{tmp_path}/none.sock")) == (
        f"coral: no colony at unix:{tmp_path}/none.sock (start one with `coral colony start`)")
