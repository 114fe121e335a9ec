"""`coral probe attach` while `coral agent start` holds the DuckDB file: the
command probes and prints as always and records its session in the agent's
store through ProbeService. Real agent, real gRPC, real uprobes, and the
agent's DuckDB read once it has stopped."""

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time

import grpc
import numpy as np
import pytest

from conftest import jsonl
from coral_probe.api import pb, pb_grpc, qpb, qpb_grpc
from coral_probe.api.probe_service import (CUT_REASON, MAX_OPEN_SESSIONS, NO_STREAM_REASON, NO_STREAM_TIMEOUT_S,
                                           SESSION_METADATA)

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


def begin(stub, target: str = "/bin/sender") -> str:
    """The session's "id.secret"."""
    return stub.BeginProbeSession(pb.BeginProbeSessionRequest(
        probe_type="uprobe", target=target, pid=4242, functions=["sender_fn"], nargs=1,
        options_json="{}"), timeout=30).session_id


def refused(call, *args, **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(*args, timeout=30, **kw)
    assert "\n" not in e.value.details()
    return e.value


def wait_until(what: str, predicate, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within_s:.0f} s")
        time.sleep(0.2)


def agent_rows(agent, session_id: str) -> int:
    """The session's rows a query through the running agent sees."""
    answer = qpb_grpc.QueryServiceStub(agent.channel).ExecuteQuery(qpb.ExecuteQueryRequest(
        sql=f"SELECT count(*) FROM probe_events WHERE session_id = '{session_id}'"), timeout=30)
    return json.loads(answer.rows_json)[0][0]


def idle_ended(agent) -> int:
    """Sessions the agent ended for want of an events stream, as a query through it sees them."""
    answer = qpb_grpc.QueryServiceStub(agent.channel).ExecuteQuery(qpb.ExecuteQueryRequest(
        sql=f"SELECT count(*) FROM probe_sessions WHERE stop_reason = '{NO_STREAM_REASON}'"), timeout=30)
    return json.loads(answer.rows_json)[0][0]


def held_stream(stub, token: str, first: int, then: int):
    """A stream named in its metadata, as the command's: it sends `first` rows
    (if any), holds on until released, then sends `then` rows."""
    release = threading.Event()

    def requests():
        if first:
            yield batch(token, first)
        assert release.wait(300)
        yield batch(token, then)

    return release, stub.RecordProbeEvents.future(requests(), metadata=((SESSION_METADATA, token),), timeout=300)


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


def test_the_agent_stopping_mid_session_is_said_once_and_the_output_goes_on(coral, targets, agent, tmp_path):
    """300 calls stored by the agent, then the agent stops; the 200 calls made
    once the command has said so are shown, counted, and not stored."""
    with open(tmp_path / "events.jsonl", "w") as out:
        attach = coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--args", "1",
                             "--binary", str(targets["counter"]), stdout=out, stderr=subprocess.PIPE)
    err_lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [err_lines.put(line) for line in attach.stderr], daemon=True).start()
    said: list[str] = []

    def wait_for_line(part: str) -> str:
        while True:
            try:
                said.append(err_lines.get(timeout=120))
            except queue.Empty:
                pytest.fail(f"the command did not say {part!r}: {''.join(said)}")
            if part in said[-1]:
                return said[-1]

    try:
        session_id = wait_for_line("coral: attached").rsplit("session ", 1)[1].split()[0]
        subprocess.run([str(targets["counter"]), "300", "100"], timeout=120)
        # In the agent's store while the session is still open (the agent's own flush).
        wait_until("the first 300 rows stored", lambda: agent_rows(agent, session_id) == 300)
        assert agent.terminate() == 0
        wait_for_line("coral: the agent went away: the events from now on are not stored")
        subprocess.run([str(targets["counter"]), "200", "100"], timeout=120)
    finally:
        attach.send_signal(signal.SIGINT)  # every call made is drained before the summary
        attach.wait(60)
    wait_for_line("not stored (")
    err = "".join(said)
    assert attach.returncode == 0, err
    assert err.count("the events from now on are not stored") == 1, err
    events = jsonl((tmp_path / "events.jsonl").read_text())
    assert [e["args"][0] for e in events] == [*range(1, 301), *range(1, 201)]  # shown, all of them
    summary = said[-1].strip()
    counts = re.search(r"delivered ([\d,]+), .*; (\d+) rows sent to the agent \(session \w+\), ([\d,]+) not stored "
                       r"\(the agent went away\)$", summary)
    assert counts, summary
    assert [int(n.replace(",", "")) for n in counts.groups()] == [500, 300, 200], summary

    [(hits, reason)] = coral.query("SELECT hits, stop_reason FROM probe_sessions WHERE session_id = ?", [session_id])
    assert (hits, reason) == (None, CUT_REASON)
    assert coral.query("SELECT list(args[1] ORDER BY args[1]) FROM probe_events WHERE session_id = ?",
                       [session_id]) == [(list(range(1, 301)),)]


def test_a_session_is_written_to_only_with_its_secret(coral, agent):
    stub = pb_grpc.ProbeServiceStub(agent.channel)
    token = begin(stub)
    session_id, secret = token.split(".")
    assert secret and secret not in session_id
    for wrong in (session_id, f"{session_id}.{'A' * len(secret)}", f"{session_id}.{secret}x"):
        assert refused(stub.RecordProbeEvents, iter([batch(wrong, 3)])).code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused(stub.RecordProbeEvents, iter([]), metadata=((SESSION_METADATA, wrong),)).code() == (
            grpc.StatusCode.PERMISSION_DENIED)
        assert refused(stub.EndProbeSession, pb.EndProbeSessionRequest(session_id=wrong, stop_reason="taken")
                       ).code() == grpc.StatusCode.PERMISSION_DENIED
    assert stub.RecordProbeEvents(iter([batch(token, 3)]), metadata=((SESSION_METADATA, token),), timeout=30).rows == 3
    assert stub.EndProbeSession(pb.EndProbeSessionRequest(session_id=token, hits=3, delivered=3, stop_reason="test"),
                                timeout=30).rows == 3
    assert agent.terminate() == 0

    assert coral.query("SELECT hits, stop_reason FROM probe_sessions") == [(3, "test")]
    assert coral.query("SELECT count(*) FROM probe_events") == [(3,)]


def test_open_sessions_are_capped_and_one_left_without_a_stream_is_ended(coral, agent):
    stub = pb_grpc.ProbeServiceStub(agent.channel)
    streaming = begin(stub)
    release, stream = held_stream(stub, streaming, 0, 3)  # a quiet command's stream: open, nothing sent yet
    idle = [begin(stub) for _ in range(MAX_OPEN_SESSIONS - 1)]
    full = refused(stub.BeginProbeSession, pb.BeginProbeSessionRequest(
        probe_type="uprobe", target="/bin/sender", functions=["sender_fn"], nargs=1))
    assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, full.details()

    def begun() -> bool:
        try:
            begin(stub)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.details()
            return False
        return True

    # The idle ones are ended NO_STREAM_TIMEOUT_S after their begin; the streaming one goes on.
    wait_until("room for a session", begun, within_s=NO_STREAM_TIMEOUT_S + 120)
    # Begun one after another (slowly on a busy machine), they end one after another too.
    wait_until("every idle session ended", lambda: idle_ended(agent) == len(idle), within_s=NO_STREAM_TIMEOUT_S + 120)
    release.set()
    assert stream.result(timeout=60).rows == 3
    assert stub.EndProbeSession(pb.EndProbeSessionRequest(session_id=streaming, stop_reason="test"),
                                timeout=30).rows == 3
    gone = refused(stub.EndProbeSession, pb.EndProbeSessionRequest(session_id=idle[0], stop_reason="late"))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    assert agent.terminate() == 0

    ended = dict(coral.query("SELECT session_id, stop_reason FROM probe_sessions WHERE ended_at IS NOT NULL"))
    assert ended[streaming.split(".")[0]] == "test"
    assert [ended.get(token.split(".")[0]) for token in idle] == [NO_STREAM_REASON] * len(idle)
    assert coral.query("SELECT count(*) FROM probe_events") == [(3,)]


def test_a_quiet_session_is_written_while_open_and_survives_a_kill(coral, agent):
    stub = pb_grpc.ProbeServiceStub(agent.channel)
    token = begin(stub)
    session_id = token.split(".")[0]
    release, stream = held_stream(stub, token, 4, 1)
    try:
        # No batch follows to trigger the writer's flush: the agent's own does it.
        wait_until("a quiet session's rows visible", lambda: agent_rows(agent, session_id) == 4)
        agent.proc.kill()
        assert agent.proc.wait(30) == -signal.SIGKILL
    finally:
        release.set()
    with pytest.raises(grpc.RpcError):
        stream.result(timeout=60)

    assert coral.query("SELECT count(*), max(args[1]) FROM probe_events WHERE session_id = ?",
                       [session_id]) == [(4, 3)]
    assert coral.query("SELECT ended_at FROM probe_sessions WHERE session_id = ?", [session_id]) == [(None,)]


def test_client_strings_cannot_forge_an_agent_log_line(coral, agent):
    stub = pb_grpc.ProbeServiceStub(agent.channel)
    token = begin(stub, target="/bin/t\ncoral agent: forged begin")
    stub.EndProbeSession(pb.EndProbeSessionRequest(session_id=token, stop_reason="done\ncoral agent: forged end"),
                         timeout=30)
    assert agent.terminate() == 0
    assert not [line for line in agent.lines if line.startswith("coral agent: forged")], agent.lines
    said = [line for line in agent.lines if "forged" in line]
    assert len(said) == 2 and all("\\x0a" in line for line in said), said
