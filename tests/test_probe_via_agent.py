"""`coral probe attach` while `coral agent start` holds the DuckDB file: the
command probes and prints as always and records its session in the agent's
store through ProbeService. Real agent, real gRPC, real uprobes, and the
agent's DuckDB read once it has stopped."""

import os
import re
import signal
import subprocess
import time

import grpc
import numpy as np
import pytest

from conftest import jsonl
from coral_probe.api import pb, pb_grpc
from coral_probe.api.probe_service import CUT_REASON

pytestmark = pytest.mark.bpf

RECORDED = "rows in the agent's database"


def held_counter(targets, *args: str) -> subprocess.Popen:
    """A counter that makes its calls once told to (a line on stdin)."""
    proc = subprocess.Popen([str(targets["counter"]), *args], env={**os.environ, "COUNTER_WAIT": "1"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def go(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


def wait_until_attached(proc: subprocess.Popen) -> str:
    line = proc.stderr.readline()
    assert line.startswith("coral: attached"), line + proc.stderr.read()
    return line


def batch(session_id: str, rows: int, *, skip: str | None = None, short: str | None = None,
          probe_id: int = 0) -> pb.ProbeEventBatch:
    """A well-formed batch of `rows` events of one 1-arg function, but for the column left out or cut short."""
    columns = {"ts_ns": np.arange(rows, dtype=np.int64) + time.time_ns(),
               "probe_id": np.full(rows, probe_id, dtype=np.uint32),
               "pid": np.full(rows, 4242, dtype=np.uint32), "tid": np.full(rows, 4243, dtype=np.uint32),
               "comm": np.zeros(rows, dtype=np.uint32), "duration_ns": np.arange(rows, dtype=np.int64) * 10,
               "has_return": np.ones(rows, dtype=bool), "has_value": np.ones(rows, dtype=bool),
               "ret": np.arange(rows, dtype=np.int64) * 3, "arg0": np.arange(rows, dtype=np.int64)}
    return pb.ProbeEventBatch(
        session_id=session_id, rows=rows, comm_names=["sender"],
        columns={name: pb.EventColumn(dtype=col.dtype.name, data=col.tobytes()[:-1] if name == short
                                      else col.tobytes())
                 for name, col in columns.items() if name != skip})


def begin(stub) -> str:
    return stub.BeginProbeSession(pb.BeginProbeSessionRequest(
        probe_type="uprobe", target="/bin/sender", pid=4242, functions=["sender_fn"], nargs=1,
        options_json="{}"), timeout=30).session_id


def test_attach_recorded_by_the_agent_with_exact_rows(coral, targets, agent):
    result = coral.run("probe", "attach", "-o", "jsonl", "coral_work", "--args", "2", "--",
                       str(targets["counter"]), "50", "200")
    events = jsonl(result.stdout)
    assert result.returncode == 50 % 7, result.stderr
    assert [e["args"] for e in events] == [[i, 2 * i] for i in range(1, 51)]
    assert "(recorded by the agent)" in result.stderr
    assert f"50 {RECORDED}" in result.stderr and "hits 50, delivered 50, lost 0" in result.stderr
    table = coral.run("probe", "attach", "coral_work", "--", str(targets["counter"]), "20")
    assert f"20 {RECORDED}" in table.stdout + table.stderr, table.stdout + table.stderr
    assert agent.terminate() == 0

    sessions = coral.query("SELECT session_id, hits, delivered, lost, stop_reason, functions, ended_at IS NOT NULL"
                           " FROM probe_sessions ORDER BY started_at")
    assert [s[1:] for s in sessions] == [(50, 50, 0, "command exited", ["coral_work"], True),
                                         (20, 20, 0, "command exited", ["coral_work"], True)]
    rows = coral.query("SELECT function_name, comm, args, return_value, duration_ns FROM probe_events"
                       " WHERE session_id = ? ORDER BY timestamp", [sessions[0][0]])
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("coral_work", "counter", [i, 2 * i], 3 * i)
                                                        for i in range(1, 51)]
    assert all(r[4] >= 200_000 for r in rows)
    assert coral.query("SELECT count(*) FROM probe_events WHERE session_id = ?", [sessions[1][0]]) == [(20,)]


def test_two_attaches_at_once_are_both_recorded(coral, targets, agent):
    counters = [held_counter(targets, str(n), "100") for n in (40, 25)]
    attaches = [coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--args", "1", "--pid", str(p.pid),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for p in counters]
    sessions = [wait_until_attached(a).rsplit("session ", 1)[1].split()[0] for a in attaches]
    for p in counters:  # both sessions are open at the agent now
        go(p)
    for p in counters:
        p.wait(timeout=60)
    outputs = [a.communicate(timeout=60) for a in attaches]
    for (out, err), n in zip(outputs, (40, 25)):
        assert sorted(e["args"][0] for e in jsonl(out)) == list(range(1, n + 1)), err
        assert f"{n} {RECORDED}" in err
    assert agent.terminate() == 0

    for session_id, n in zip(sessions, (40, 25)):
        assert coral.query("SELECT hits, delivered, lost, stop_reason FROM probe_sessions WHERE session_id = ?",
                           [session_id]) == [(n, n, 0, "process exited")]
        assert coral.query("SELECT list(args[1] ORDER BY args[1]) FROM probe_events WHERE session_id = ?",
                           [session_id]) == [(list(range(1, n + 1)),)]


def test_malformed_batches_are_refused_and_the_agent_still_serves(coral, agent):
    stub = pb_grpc.ProbeServiceStub(agent.channel)
    session_id = begin(stub)
    bad = {"missing": batch(session_id, 3, skip="arg0"), "short": batch(session_id, 3, short="ts_ns"),
           "past its functions": batch(session_id, 3, probe_id=1),
           "unknown session": batch("nosuchsession", 3)}
    codes = {}
    for what, message in bad.items():
        with pytest.raises(grpc.RpcError) as refused:
            stub.RecordProbeEvents(iter([batch(session_id, 2), message]), timeout=30)
        codes[what] = refused.value.code()
        assert "\n" not in refused.value.details()
    assert codes == {"missing": grpc.StatusCode.INVALID_ARGUMENT, "short": grpc.StatusCode.INVALID_ARGUMENT,
                     "past its functions": grpc.StatusCode.INVALID_ARGUMENT,
                     "unknown session": grpc.StatusCode.INVALID_ARGUMENT}  # one session per stream
    with pytest.raises(grpc.RpcError) as unknown:
        stub.RecordProbeEvents(iter([batch("nosuchsession", 3)]), timeout=30)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert stub.RecordProbeEvents(iter([batch(session_id, 5)]), timeout=30).rows == 5
    ended = stub.EndProbeSession(pb.EndProbeSessionRequest(session_id=session_id, hits=13, delivered=13,
                                                           stop_reason="test"), timeout=30)
    assert ended.rows == 4 * 2 + 5  # the good batch before each bad one, and the last
    with pytest.raises(grpc.RpcError) as again:
        stub.EndProbeSession(pb.EndProbeSessionRequest(session_id=session_id), timeout=30)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND
    assert agent.stub.ListScripts(pb.ListScriptsRequest(), timeout=30) is not None
    assert agent.terminate() == 0

    assert coral.query("SELECT hits, delivered, stop_reason FROM probe_sessions") == [(13, 13, "test")]
    assert coral.query("SELECT count(*), min(function_name), min(comm), max(args[1]) FROM probe_events") == [
        (13, "sender_fn", "sender", 4)]


def test_a_killed_attach_keeps_its_rows_and_its_session_is_ended(coral, targets, agent):
    target = held_counter(targets, "100000000", "50")
    attach = coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--args", "2", "--pid", str(target.pid),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        session_id = wait_until_attached(attach).rsplit("session ", 1)[1].split()[0]
        go(target)
        # Shown means queued for the agent; thousands shown, the first batches have long been sent.
        for _ in range(5000):
            assert attach.stdout.readline(), attach.stderr.read()
        attach.send_signal(signal.SIGKILL)
        attach.wait(30)
    finally:
        target.kill()
        target.wait(30)
    assert agent.terminate() == 0  # the cut is seen at once, or the agent's stop ends the session

    session = coral.query("SELECT hits, ended_at IS NOT NULL, stop_reason FROM probe_sessions"
                          " WHERE session_id = ?", [session_id])
    assert session == [(None, True, CUT_REASON)]
    [(n, bad)] = coral.query("SELECT count(*), count(*) FILTER (args[2] != 2 * args[1]"
                             " OR function_name != 'coral_work') FROM probe_events WHERE session_id = ?",
                             [session_id])
    assert n > 0 and bad == 0


def test_script_with_an_agent_is_refused_in_one_line(coral, targets, agent):
    script = coral.home / "s.ts"
    script.write_text("console.log('hi');\n")
    result = coral.run("probe", "attach", "coral_work", "--script", str(script), "--", str(targets["counter"]), "5")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "coral run" in result.stderr, result.stderr


def test_db_option_with_an_agent_writes_that_file(coral, targets, agent, tmp_path):
    db = tmp_path / "own.duckdb"
    result = coral.run("probe", "attach", "-o", "jsonl", "coral_work", "--db", str(db), "--",
                       str(targets["counter"]), "7")
    assert len(jsonl(result.stdout)) == 7 and f"7 rows in {db}" in result.stderr, result.stderr
    assert "recorded by the agent" not in result.stderr


def test_the_agent_stopping_mid_session_is_said_once_and_the_output_goes_on(coral, targets, agent):
    target = held_counter(targets, "100000000", "200")
    attach = coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--pid", str(target.pid),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        session_id = wait_until_attached(attach).rsplit("session ", 1)[1].split()[0]
        go(target)
        for _ in range(2000):
            assert attach.stdout.readline(), attach.stderr.read()
        assert agent.terminate() == 0
        for _ in range(2000):  # shown still, once the agent is gone
            assert attach.stdout.readline(), attach.stderr.read()
    finally:
        target.kill()
        target.wait(30)
    out, err = attach.communicate(timeout=60)
    assert attach.returncode == 0, err
    assert err.count("coral: the agent went away: the events from now on are not stored") == 1, err
    summary = err.strip().splitlines()[-1]
    counts = re.search(r"delivered ([\d,]+), .*; (\d+) rows sent to the agent \(session \w+\), ([\d,]+) not stored "
                       r"\(the agent went away\)$", summary)
    assert counts, summary
    delivered, sent, not_stored = (int(n.replace(",", "")) for n in counts.groups())
    assert sent + not_stored == delivered and not_stored > 0, summary

    [(hits, reason)] = coral.query("SELECT hits, stop_reason FROM probe_sessions WHERE session_id = ?", [session_id])
    assert (hits, reason) == (None, CUT_REASON)
    [(stored,)] = coral.query("SELECT count(*) FROM probe_events WHERE session_id = ?", [session_id])
    assert 0 < stored <= sent
