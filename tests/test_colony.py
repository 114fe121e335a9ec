"""The colony's QueryService over real agents: `coral agent start` on
CORAL_HOMEs of their own, one `coral colony start` dialing their sockets,
real uprobes recording the same workload through each agent, and the
colony's answers checked against the union of the agents' rows."""

import json
import math
import os
import signal
import stat
import time

import grpc
import pytest

from agents import Agent
from colonies import Colony
from conftest import Coral
from coral_probe import __version__
from coral_probe.api import cpb, cpb_grpc, qpb, qpb_grpc
from coral_probe.colony import merge
from coral_probe.sketch import RELATIVE_ACCURACY, Sketch

SERVICE = "svc"
SLOW_NS = 10_000_000
# Per agent: counter N SLEEP_US SLOW_EVERY SLOW_US, so 4 + 3 calls of 10 ms and more.
WORKLOADS = {"a1": ("40", "200", "10", "20000"), "a2": ("60", "1000", "20", "50000")}


def start_agent(tmp_path_factory, targets, agent_id: str, *args: str) -> Agent:
    home = tmp_path_factory.mktemp(f"home-{agent_id}")
    counter = os.path.realpath(targets["counter"])
    return Agent(Coral(home), "--id", agent_id, "--allow-probe", f"binary:{counter}", *args)


def address(agent: Agent) -> str:
    return f"unix:{agent.coral.home / 'agent.sock'}"


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=60)
    assert "\n" not in e.value.details()
    return e.value


def rows(reply: qpb.ExecuteQueryResponse) -> list[list]:
    return json.loads(reply.rows_json)


def missing(reply) -> list[str]:
    return [m.agent_id for m in reply.missing]


def reachable(colony: Colony) -> dict[str, bool]:
    return {a.id: a.reachable for a in colony.query.ListAgents(qpb.ListAgentsRequest(), timeout=60).agents}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, targets):
    """Two agents that recorded the WORKLOADS as service `svc`, and a colony over them."""
    agents = {agent_id: start_agent(tmp_path_factory, targets, agent_id) for agent_id in WORKLOADS}
    colony = None
    try:
        for agent_id, workload in WORKLOADS.items():
            run = agents[agent_id].coral.run("probe", "attach", "--service", SERVICE, "coral_work", "-o", "jsonl", "--",
                                             str(targets["counter"]), *workload)
            calls = int(workload[0])
            assert run.returncode == calls % 7, run.stderr
            assert f"{calls} rows in the agent's database" in run.stderr, run.stderr
        colony = Colony(Coral(tmp_path_factory.mktemp("home-colony")),
                        {agent_id: address(agent) for agent_id, agent in agents.items()})
        yield colony, agents
    finally:
        if colony is not None:
            assert colony.stop() == 0, "\n".join(colony.lines)
        for agent in agents.values():
            agent.stop()


def durations(colony: Colony) -> dict[str, list[int]]:
    """The truth: every agent's recorded coral_work durations, read through the colony."""
    reply = colony.query.ExecuteQuery(qpb.ExecuteQueryRequest(
        sql="SELECT duration_ns FROM probe_events WHERE function_name = 'coral_work'", max_rows=10_000), timeout=60)
    assert reply.source == "agents" and not reply.missing and not reply.truncated
    assert list(reply.columns) == ["agent_id", "duration_ns"] and reply.column_types[0] == "VARCHAR"
    by_agent: dict[str, list[int]] = {}
    for agent_id, duration in rows(reply):
        by_agent.setdefault(agent_id, []).append(duration)
    return by_agent


@pytest.mark.bpf
def test_services_of_both_agents(fleet):
    colony, agents = fleet
    listed = colony.query.ListServices(qpb.ListServicesRequest(), timeout=60)
    assert not listed.missing
    assert sorted((s.agent_id, s.name, s.events) for s in listed.services if s.name == SERVICE) == [
        ("a1", SERVICE, 40), ("a2", SERVICE, 60)]
    one = colony.query.GetService(qpb.GetServiceRequest(name=SERVICE), timeout=60)
    assert sorted(s.agent_id for s in one.services) == ["a1", "a2"]
    assert one.instance_count == 2  # one counter process on each agent
    assert "coral_work" in one.functions


@pytest.mark.bpf
def test_fleet_percentiles_are_the_percentiles_of_the_union(fleet):
    colony, agents = fleet
    truth = durations(colony)
    assert {agent_id: len(d) for agent_id, d in truth.items()} == {"a1": 40, "a2": 60}
    union = sorted(truth["a1"] + truth["a2"])
    for p in (50, 99, 0.9):
        reply = colony.query.GetPercentile(qpb.GetPercentileRequest(service=SERVICE, metric="coral_work",
                                                                    percentile=p), timeout=60)
        q = p / 100 if p > 1 else p
        exact = union[math.floor(q * (len(union) - 1))]
        assert reply.count == 100 and not reply.missing and reply.unit == "ns"
        # The sketch's guarantee, with room for the float rounding at a bucket's edge.
        assert abs(reply.value - exact) <= RELATIVE_ACCURACY * (1 + 1e-9) * exact, (p, reply.value, exact)
        merged = Sketch.from_proto(reply.sketch)
        assert merged.count == 100 and merged.quantile(q) == reply.value
    # The fleet's sketch is the agents' own sketches added up, bucket by bucket.
    direct = [qpb_grpc.QueryServiceStub(agent.channel).GetPercentile(qpb.GetPercentileRequest(
        service=SERVICE, metric="coral_work", percentile=50), timeout=60) for agent in agents.values()]
    assert [d.count for d in direct] == [40, 60]
    added = Sketch()
    for d in direct:
        added.merge(Sketch.from_proto(d.sketch))
    assert added == merged


@pytest.mark.bpf
def test_error_rates_add_up(fleet):
    colony, agents = fleet
    reply = colony.query.GetErrorRate(qpb.GetErrorRateRequest(service=SERVICE), timeout=60)
    direct = [qpb_grpc.QueryServiceStub(agent.channel).GetErrorRate(qpb.GetErrorRateRequest(service=SERVICE),
                                                                      timeout=60) for agent in agents.values()]
    assert reply.total_count == sum(d.total_count for d in direct) == 100
    assert reply.error_count == sum(d.error_count for d in direct)
    truth = colony.query.ExecuteQuery(qpb.ExecuteQueryRequest(
        sql="SELECT count(*) FILTER (return_value <> 0), count(*) FROM probe_events"
            " WHERE function_name = 'coral_work' AND return_value IS NOT NULL"), timeout=60)
    errors = sum(row[1] for row in rows(truth))
    assert reply.error_count == errors and math.isclose(reply.rate, errors / 100)


@pytest.mark.bpf
def test_slow_traces_of_both_agents_slowest_first(fleet):
    colony, agents = fleet
    reply = colony.query.FindSlowTraces(qpb.FindSlowTracesRequest(service=SERVICE, min_duration_ns=SLOW_NS),
                                        timeout=60)
    assert not reply.missing and reply.total_count == 7
    assert sorted(t.agent_id for t in reply.traces) == ["a1"] * 4 + ["a2"] * 3
    assert all(t.duration_ns >= SLOW_NS and t.function == "coral_work" for t in reply.traces)
    assert [t.duration_ns for t in reply.traces] == sorted((t.duration_ns for t in reply.traces), reverse=True)
    # Cut to the limit after the merge: the 50 ms calls of a2 come first, the count is the fleet's.
    cut = colony.query.FindSlowTraces(qpb.FindSlowTracesRequest(service=SERVICE, min_duration_ns=SLOW_NS, limit=4),
                                      timeout=60)
    assert [t.agent_id for t in cut.traces] == ["a2", "a2", "a2", "a1"] and cut.total_count == 7
    errors = colony.query.FindErrorTraces(qpb.FindErrorTracesRequest(service=SERVICE, limit=10), timeout=60)
    assert len(errors.traces) == 10 and errors.total_count == 100  # counter's coral_work returns 3i: never 0
    assert [t.timestamp_ns for t in errors.traces] == sorted((t.timestamp_ns for t in errors.traces), reverse=True)


@pytest.mark.bpf
def test_unknown_service_is_not_found_with_the_known_ones(fleet):
    colony, agents = fleet
    for call, request in ((colony.query.GetPercentile, qpb.GetPercentileRequest(service="nope", metric="coral_work",
                                                                                 percentile=99)),
                          (colony.query.GetService, qpb.GetServiceRequest(name="nope")),
                          (colony.query.GetErrorRate, qpb.GetErrorRateRequest(service="nope"))):
        e = refused(call, request)
        assert e.code() == grpc.StatusCode.NOT_FOUND
        assert e.details() == f"unknown service 'nope': known: {SERVICE}", e.details()


@pytest.mark.bpf
def test_percentile_out_of_range_is_refused_once(fleet):
    colony, agents = fleet
    e = refused(colony.query.GetPercentile, qpb.GetPercentileRequest(service=SERVICE, metric="coral_work",
                                                                     percentile=-1))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "out of range" in e.details()


@pytest.mark.bpf
def test_sql_runs_on_every_agent_or_on_the_colony(fleet):
    colony, agents = fleet
    # Large integers cross both hops exactly, behind the agent's id.
    big = colony.query.ExecuteQuery(qpb.ExecuteQueryRequest(
        sql="SELECT count(*), 18446744073709551615::UBIGINT AS big FROM probe_events"), timeout=60)
    assert big.source == "agents" and list(big.columns) == ["agent_id", "count_star()", "big"]
    assert sorted(rows(big)) == [["a1", 40, 2**64 - 1], ["a2", 60, 2**64 - 1]] and big.row_count == 2
    capped = colony.query.ExecuteQuery(qpb.ExecuteQueryRequest(sql="SELECT * FROM probe_events", max_rows=5),
                                       timeout=60)
    assert capped.truncated and capped.row_count == 10  # max_rows is per agent
    # The fleet's emitted events are the colony's own: pushed to it as an agent's pusher does, read there.
    events = [cpb.EmittedEvent(id=f"e{seq}", seq=seq, timestamp_us=time.time_ns() // 1000, name="order",
                               data_json="{}", severity="info") for seq in (1, 2, 3)]
    pushed = cpb_grpc.ColonyServiceStub(colony.channel).PushEmits
    acks = list(pushed(iter([cpb.EmitBatch(agent_id="a2", events=events)]), timeout=60))
    assert acks[-1].through_seq == 3
    own = colony.query.ExecuteQuery(qpb.ExecuteQueryRequest(sql="SELECT count(*) FROM emitted_events"), timeout=60)
    assert own.source == "colony" and list(own.columns) == ["count_star()"] and not own.missing
    assert rows(own) == [[3]]
    listed = colony.query.ExecuteQuery(qpb.ExecuteQueryRequest(
        sql="SELECT agent_id, id FROM emitted_events ORDER BY seq"), timeout=60)
    assert listed.source == "colony" and rows(listed) == [["a2", "e1"], ["a2", "e2"], ["a2", "e3"]]
    for write in ("DELETE FROM probe_events", "INSERT INTO emitted_events (agent_id) VALUES ('x')"):
        e = refused(colony.query.ExecuteQuery, qpb.ExecuteQueryRequest(sql=write))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.details().endswith("(rejected on every agent)"), e.details()
    assert {agent_id: len(d) for agent_id, d in durations(colony).items()} == {"a1": 40, "a2": 60}


@pytest.mark.bpf
def test_list_agents_and_their_metrics(fleet):
    colony, agents = fleet
    listed = colony.query.ListAgents(qpb.ListAgentsRequest(), timeout=60).agents
    assert [(a.id, a.address, a.reachable, a.version, a.error) for a in listed] == [
        (agent_id, address(agent), True, __version__, "") for agent_id, agent in agents.items()]
    assert all(a.HasField("last_seen") for a in listed)
    metrics = colony.query.GetSystemMetrics(qpb.GetSystemMetricsRequest(), timeout=60)
    assert [m.agent_id for m in metrics.agents] == ["a1", "a2"] and all(m.cores >= 1 for m in metrics.agents)


def test_a_frozen_or_stopped_agent_makes_answers_partial(tmp_path_factory, targets):
    agents = {agent_id: start_agent(tmp_path_factory, targets, agent_id, "--service", f"{SERVICE}={targets['counter']}")
              for agent_id in ("a1", "a2")}
    colony = Colony(Coral(tmp_path_factory.mktemp("home-colony")),
                    {agent_id: address(agent) for agent_id, agent in agents.items()}, "--deadline", "1s")
    try:
        # Frozen: connected, but no answer within the per-agent deadline.
        os.kill(agents["a2"].proc.pid, signal.SIGSTOP)
        try:
            listed = colony.query.ListServices(qpb.ListServicesRequest(), timeout=60)
        finally:
            os.kill(agents["a2"].proc.pid, signal.SIGCONT)
        assert [(s.agent_id, s.name) for s in listed.services] == [("a1", SERVICE)]
        assert [(m.agent_id, m.reason) for m in listed.missing] == [("a2", "no answer within 1s")]
        # Thawed, it is heard again: a missing agent is asked at every query.
        deadline = time.monotonic() + 60
        while not reachable(colony)["a2"]:
            assert time.monotonic() < deadline, "a2 not heard again once thawed"
            time.sleep(0.2)

        agents["a2"].stop()
        listed = colony.query.ListServices(qpb.ListServicesRequest(), timeout=60)
        assert [(s.agent_id, s.name) for s in listed.services] == [("a1", SERVICE)]
        assert missing(listed) == ["a2"] and listed.missing[0].reason
        one = colony.query.GetService(qpb.GetServiceRequest(name=SERVICE), timeout=60)
        assert [s.agent_id for s in one.services] == ["a1"] and missing(one) == ["a2"]
        counted = colony.query.ExecuteQuery(qpb.ExecuteQueryRequest(sql="SELECT count(*) FROM probe_events"),
                                            timeout=60)
        assert rows(counted) == [["a1", 0]] and missing(counted) == ["a2"]
        unknown = refused(colony.query.GetService, qpb.GetServiceRequest(name="nope"))
        assert unknown.code() == grpc.StatusCode.NOT_FOUND
        assert unknown.details() == f"unknown service 'nope': known: {SERVICE}; no answer from a2"
        listed_agents = {a.id: a for a in colony.query.ListAgents(qpb.ListAgentsRequest(), timeout=60).agents}
        assert listed_agents["a1"].reachable and not listed_agents["a2"].reachable and listed_agents["a2"].error

        agents["a1"].stop()
        e = refused(colony.query.ListServices, qpb.ListServicesRequest())
        assert e.code() == grpc.StatusCode.UNAVAILABLE
        assert e.details().startswith("no agent answered: a1 (") and "; a2 (" in e.details()
    finally:
        assert colony.stop() == 0, "\n".join(colony.lines)
        for agent in agents.values():
            agent.stop()


def test_an_unreachable_agent_at_start_is_warned_and_the_others_served(tmp_path_factory, targets, tmp_path):
    agent = start_agent(tmp_path_factory, targets, "a1")
    absent = f"unix:{tmp_path / 'absent.sock'}"
    colony = Colony(Coral(tmp_path_factory.mktemp("home-colony")), {"a1": address(agent), "a2": absent})
    try:
        warnings = [line for line in colony.lines if "warning" in line]
        assert len(warnings) == 1 and f"agent a2 at {absent} is unreachable" in warnings[0], colony.lines
        assert stat.S_IMODE(colony.socket.stat().st_mode) == 0o600
        counted = colony.query.ExecuteQuery(qpb.ExecuteQueryRequest(sql="SELECT count(*) FROM probe_events"),
                                            timeout=60)
        assert rows(counted) == [["a1", 0]] and missing(counted) == ["a2"]
    finally:
        assert colony.stop() == 0, "\n".join(colony.lines)
        agent.stop()


def test_listen_without_tls_or_token_is_refused_in_one_line(coral, tmp_path):
    run = coral.run("colony", "start", "--agent", f"a1=unix:{tmp_path / 'a.sock'}", "--listen", "127.0.0.1:0")
    assert run.returncode != 0
    assert len(run.stderr.strip().splitlines()) == 1 and "refusing plain TCP" in run.stderr, run.stderr
    assert not (coral.home / "colony.sock").exists()


def test_rows_of_agents_with_other_columns_are_left_out_not_mixed():
    """merge.rows alone: agents of one coral give one shape for one SQL, but a
    fleet mid-upgrade may not."""
    replies = {
        "a1": qpb.ExecuteQueryResponse(columns=["n", "big"], column_types=["BIGINT", "UBIGINT"],
                                       rows_json=f"[[1, {2**64 - 1}], [2, 0.1]]", row_count=2, source="agent"),
        "a2": qpb.ExecuteQueryResponse(columns=["n"], column_types=["INTEGER"], rows_json="[[3]]", row_count=1),
        "a3": qpb.ExecuteQueryResponse(columns=["n", "big"], column_types=["BIGINT", "UBIGINT"], rows_json="[]",
                                       truncated=True),
    }
    reply, differing = merge.rows(replies)
    assert list(reply.columns) == ["agent_id", "n", "big"] and list(reply.column_types)[0] == "VARCHAR"
    assert reply.rows_json == f'[["a1", 1, {2**64 - 1}],["a1", 2, 0.1]]' and reply.row_count == 2
    assert reply.truncated and reply.source == "agents"
    assert differing == {"a2": "its columns (n INTEGER) differ from a1's (n BIGINT, big UBIGINT)"}
