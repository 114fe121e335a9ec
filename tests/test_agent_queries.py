"""QueryService on one agent: services, percentiles with their sketch,
error rates, slow and failing calls, system metrics, SQL, against a real
`coral agent start --id a1 --service work=COUNTER` whose store holds real
`coral probe attach` sessions of real processes, recorded through it. The
answers are checked against the rows themselves (read through ExecuteQuery)
and against what a real script's metrics.* says on the same agent."""

import json
import math
import os
import time
from pathlib import Path

import grpc
import pytest

from agents import Agent
from conftest import Coral
from coral_probe import analytics
from coral_probe.api import qpb, qpb_grpc
from coral_probe.services import ServiceMap
from coral_probe.sketch import RELATIVE_ACCURACY, Sketch
from coral_probe.store import ProbeSessionInfo, Store

pytestmark = pytest.mark.bpf

ROOT = Path(__file__).resolve().parent.parent
PAYMENTS = ROOT / "examples" / "payments" / "payments"
# counter CALLS FAST_US SLOW_EVERY SLOW_US: calls 10, 20 and 30 of each process are slow.
CALLS, SLOW_EVERY, SLOW_US = 30, 10, 40_000
PROCESSES = 3
SLOW_CALLS = PROCESSES * (CALLS // SLOW_EVERY)
# payments declines the customers that are multiples of 7 (return value 1).
NAMED_CALLS, UNNAMED_CALLS = 14, 21

PERCENTILES = """
import * as coral from "@coral/sdk";

const p50 = await coral.metrics.getPercentile("work", "coral_work", 0.5);
const p99 = await coral.metrics.getPercentile("work", "coral_work", 99);
const rate = await coral.metrics.getErrorRate("other");
const slow = await coral.traces.findSlow("work", { minDurationMs: 30, limit: 100 });
let unknown = "";
try {
  await coral.metrics.getPercentile("nope", "coral_work", 0.5);
} catch (e) {
  unknown = `${(e as coral.CoralError).code}: ${(e as Error).message}`;
}
console.log(JSON.stringify({ p50, p99, rate, slow: slow.map((s) => [s.service, s.durationNs]), unknown }));
"""


def attach(coral: Coral, *args: str) -> None:
    """One `coral probe attach -- COMMAND` recorded by the agent, to the command's end."""
    result = coral.run("probe", "attach", "-o", "jsonl", *args)
    assert "(recorded by the agent)" in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, targets):
    """An agent a1 with the sessions of three counters (configured as `work`),
    payments attached as `other`, and payments unnamed."""
    home = tmp_path_factory.mktemp("agent-queries")
    coral = Coral(home)
    counter = os.path.realpath(targets["counter"])
    agent = Agent(coral, "--id", "a1", "--service", f"work={counter}", "--service", f"idle={targets['threads']}")
    try:
        for _ in range(PROCESSES):
            attach(coral, "coral_work", "--args", "1", "--", counter, str(CALLS), "300", str(SLOW_EVERY), str(SLOW_US))
        attach(coral, "ProcessPayment", "--args", "2", "--service", "other", "--", str(PAYMENTS),
               "--calls", str(NAMED_CALLS), "--slow-every", "0")
        attach(coral, "ProcessPayment", "--args", "2", "--", str(PAYMENTS), "--calls", str(UNNAMED_CALLS),
               "--no-sleep")
        yield coral, agent, qpb_grpc.QueryServiceStub(agent.channel)
    finally:
        agent.stop()


def sql(stub, query: str) -> list:
    return json.loads(stub.ExecuteQuery(qpb.ExecuteQueryRequest(sql=query, max_rows=10_000), timeout=60).rows_json)


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=60)
    assert "\n" not in e.value.details()
    return e.value


def test_services_are_configured_named_or_basenames_with_their_instances(fleet, targets):
    _, _, stub = fleet
    services = {s.name: s for s in stub.ListServices(qpb.ListServicesRequest(), timeout=60).services}
    assert sorted(services) == ["idle", "other", "payments", "work"]
    assert {s.agent_id for s in services.values()} == {"a1"}
    work = services["work"]
    assert (work.instance_count, work.events) == (PROCESSES, PROCESSES * CALLS)
    assert os.path.realpath(targets["counter"]) in work.binaries and work.HasField("last_seen")
    assert (services["other"].instance_count, services["other"].events) == (1, NAMED_CALLS)
    assert (services["payments"].instance_count, services["payments"].events) == (1, UNNAMED_CALLS)
    idle = services["idle"]  # configured, never probed
    assert (idle.instance_count, idle.events, idle.HasField("last_seen")) == (0, 0, False)
    assert idle.binaries == [os.path.realpath(targets["threads"])]

    one = stub.GetService(qpb.GetServiceRequest(name="work"), timeout=60)
    assert [s.name for s in one.services] == ["work"] and one.instance_count == PROCESSES
    assert list(one.functions) == ["coral_work"]
    assert list(stub.GetService(qpb.GetServiceRequest(name="other"), timeout=60).functions) == ["ProcessPayment"]
    agents = stub.ListAgents(qpb.ListAgentsRequest(), timeout=60).agents
    assert [(a.id, a.reachable, bool(a.version), bool(a.hostname)) for a in agents] == [("a1", True, True, True)]


def test_an_unknown_service_is_not_found_with_the_known_ones(fleet):
    _, _, stub = fleet
    known = "known: idle, other, payments, work"
    for call, request in [(stub.GetService, qpb.GetServiceRequest(name="nope")),
                          (stub.GetPercentile, qpb.GetPercentileRequest(service="nope", metric="f", percentile=50)),
                          (stub.GetErrorRate, qpb.GetErrorRateRequest(service="nope")),
                          (stub.FindSlowTraces, qpb.FindSlowTracesRequest(service="nope")),
                          (stub.FindErrorTraces, qpb.FindErrorTracesRequest(service="nope"))]:
        e = refused(call, request)
        assert (e.code(), e.details()) == (grpc.StatusCode.NOT_FOUND, f"unknown service 'nope': {known}")


def test_percentiles_are_the_exact_rank_within_the_sketchs_error(fleet):
    _, _, stub = fleet
    durations = sorted(row[0] for row in sql(
        stub, "SELECT duration_ns FROM probe_events JOIN probe_sessions USING (session_id)"
              " WHERE service = 'work' AND function_name = 'coral_work'"))
    assert len(durations) == PROCESSES * CALLS
    for q, asked in [(0.5, 0.5), (0.99, 99), (0.0, 0), (1.0, 1)]:
        reply = stub.GetPercentile(qpb.GetPercentileRequest(service="work", metric="coral_work", percentile=asked),
                                   timeout=60)
        exact = durations[math.floor(q * (len(durations) - 1))]
        assert reply.value == pytest.approx(exact, rel=RELATIVE_ACCURACY), q
        assert (reply.unit, reply.count) == ("ns", len(durations))
        assert reply.sketch.relative_accuracy == RELATIVE_ACCURACY
        assert reply.sketch.zero_count + sum(reply.sketch.counts) == reply.count
        assert list(reply.sketch.keys) == sorted(reply.sketch.keys)
        assert Sketch.from_proto(reply.sketch).quantile(q) == reply.value
    # The slow tenth is past p90: p99 is one of them, p50 one of the fast.
    p99 = stub.GetPercentile(qpb.GetPercentileRequest(service="work", metric="coral_work", percentile=0.99),
                             timeout=60).value
    assert p99 >= SLOW_US * 1000 * (1 - RELATIVE_ACCURACY)
    e = refused(stub.GetPercentile, qpb.GetPercentileRequest(service="work", metric="coral_work", percentile=101))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "out of range" in e.details()


def test_a_scripts_metrics_answer_as_query_service(fleet, tmp_path):
    coral, agent, stub = fleet
    script = tmp_path / "percentiles.ts"
    script.write_text(PERCENTILES)
    result = coral.run("run", str(script))
    assert result.returncode == 0, result.stderr
    said = json.loads(result.stdout)
    for key, q in [("p50", 0.5), ("p99", 0.99)]:
        assert said[key] == stub.GetPercentile(qpb.GetPercentileRequest(
            service="work", metric="coral_work", percentile=q), timeout=60).value
    assert said["rate"] == pytest.approx(2 / NAMED_CALLS)
    slow = stub.FindSlowTraces(qpb.FindSlowTracesRequest(service="work", min_duration_ns=30_000_000), timeout=60)
    assert said["slow"] == [[t.service, t.duration_ns] for t in slow.traces]
    assert said["unknown"] == "NOT_FOUND: unknown service 'nope': known: idle, other, payments, work"
    assert any(f"running {script.name} as execution" in line for line in agent.lines)  # ran in the agent


def test_error_rates_count_non_zero_returns(fleet):
    _, _, stub = fleet
    for service, function, errors, total in [("other", "", 2, NAMED_CALLS),
                                             ("payments", "ProcessPayment", 3, UNNAMED_CALLS),
                                             ("work", "coral_work", PROCESSES * CALLS, PROCESSES * CALLS),
                                             ("work", "no_such_function", 0, 0), ("idle", "", 0, 0)]:
        reply = stub.GetErrorRate(qpb.GetErrorRateRequest(service=service, function=function), timeout=60)
        assert (reply.error_count, reply.total_count) == (errors, total), service
        assert reply.rate == pytest.approx(errors / total if total else 0.0)


def test_slow_traces_are_the_slow_calls_slowest_first(fleet):
    _, _, stub = fleet
    reply = stub.FindSlowTraces(qpb.FindSlowTracesRequest(service="work", min_duration_ns=SLOW_US * 1000 // 2,
                                                          limit=5), timeout=60)
    assert reply.total_count == SLOW_CALLS and len(reply.traces) == 5
    durations = [t.duration_ns for t in reply.traces]
    assert durations == sorted(durations, reverse=True) and min(durations) >= SLOW_US * 1000
    everyone = stub.FindSlowTraces(qpb.FindSlowTracesRequest(service="work", min_duration_ns=SLOW_US * 1000 // 2),
                                   timeout=60)
    assert len(everyone.traces) == SLOW_CALLS
    assert sorted(t.args[0] for t in everyone.traces) == sorted(list(range(SLOW_EVERY, CALLS + 1, SLOW_EVERY))
                                                                * PROCESSES)
    assert len({t.pid for t in everyone.traces}) == PROCESSES
    sessions = {row[0] for row in sql(stub, "SELECT session_id FROM probe_sessions WHERE service = 'work'")}
    for t in everyone.traces:
        assert (t.agent_id, t.service, t.function) == ("a1", "work", "coral_work")
        agent_id, session_id, timestamp_ns, tid = t.trace_id.split("/")
        assert (agent_id, int(timestamp_ns), int(tid)) == ("a1", t.timestamp_ns, t.tid) and session_id in sessions
    # The fastest slow call is the limit's boundary.
    assert stub.FindSlowTraces(qpb.FindSlowTracesRequest(service="work", min_duration_ns=min(durations) + 1),
                               timeout=60).total_count < SLOW_CALLS


def test_error_traces_are_the_declined_payments_newest_first(fleet):
    _, _, stub = fleet
    reply = stub.FindErrorTraces(qpb.FindErrorTracesRequest(service="other"), timeout=60)
    assert reply.total_count == 2
    assert [(t.args[1], t.return_value) for t in reply.traces] == [(14, 1), (7, 1)]
    assert reply.traces[0].timestamp_ns > reply.traces[1].timestamp_ns
    one = stub.FindErrorTraces(qpb.FindErrorTracesRequest(service="payments", limit=1), timeout=60)
    assert one.total_count == 3 and [t.args[1] for t in one.traces] == [21]


def test_execute_query_refuses_writes_and_system_metrics_are_this_agents(fleet):
    _, _, stub = fleet
    for statement in ["INSERT INTO emitted_events VALUES ('x', now(), 'n', NULL, 'info', NULL, NULL)",
                      "CREATE TABLE t (i INTEGER)"]:
        e = refused(stub.ExecuteQuery, qpb.ExecuteQueryRequest(sql=statement))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
    assert sql(stub, "SELECT count(*) FROM emitted_events WHERE id = 'x'") == [[0]]
    assert stub.ExecuteQuery(qpb.ExecuteQueryRequest(sql="SELECT 1"), timeout=60).source == "agent"
    metrics = stub.GetSystemMetrics(qpb.GetSystemMetricsRequest(), timeout=60).agents
    assert len(metrics) == 1 and metrics[0].agent_id == "a1" and metrics[0].cores > 0
    m = metrics[0]
    assert 0 < m.memory_available_bytes <= m.memory_total_bytes and 0 <= m.cpu_usage_percent <= 100
    assert m.sampled_at_ms > 0


def test_bad_service_and_id_options_are_one_line(coral, targets):
    counter = str(targets["counter"])
    for args, says in [(("agent", "start", "--service", "x=/no/such/binary"), "binary not found: /no/such/binary"),
                       (("agent", "start", "--service", "x"), "NAME=BINARY"),
                       (("agent", "start", "--service", f"bad name={counter}"), "invalid --service name"),
                       (("agent", "start", "--service", f"a={counter}", "--service", f"a={counter}"), "given twice"),
                       (("agent", "start", "--id", "a/1"), "invalid --id"),
                       (("probe", "attach", "coral_work", "--service", "x" * 65, "--", counter), "invalid --service")]:
        result = coral.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and says in result.stderr, result.stderr
    assert not (coral.home / "agent.sock").exists()


def test_without_an_agent_a_session_is_named_by_its_service_option_or_basename(coral, targets):
    for named in (("--service", "mine"), ()):
        result = coral.run("probe", "attach", "-o", "jsonl", "coral_work", *named, "--", str(targets["counter"]), "3")
        assert "recorded by the agent" not in result.stderr and len(result.stdout.splitlines()) == 3, result.stderr
    assert coral.query("SELECT service FROM probe_sessions ORDER BY started_at") == [("mine",), ("counter",)]


def test_rows_older_than_the_service_column_are_their_targets_basename(tmp_path):
    store = Store(tmp_path / "old.duckdb")
    try:
        store.begin_probe_session(ProbeSessionInfo("uprobe", "/opt/legacy/ledger", 7, ["post"], 0, {}))
        store.con.execute("INSERT INTO probe_events SELECT session_id, make_timestamp_ns(?), 'uprobe', 'post',"
                          " '/opt/legacy/ledger', 7, 7, 'ledger', 5000, [], 0 FROM probe_sessions", [time.time_ns()])
        with store.cursor() as cur:
            assert cur.execute("SELECT service FROM probe_sessions").fetchall() == [(None,)]
            found = analytics.list_services(cur, ServiceMap(), "a1")
            assert [(s.name, s.events, s.instance_count) for s in found] == [("ledger", 1, 1)]
            assert analytics.percentile(cur, "ledger", "post", 0.5, 0, ServiceMap()).count == 1
    finally:
        store.close()
