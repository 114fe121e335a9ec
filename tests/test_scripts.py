"""Scripts under the real Deno sandbox receiving real probe events through
the Rust fan-out, storing what they emit in the real DuckDB."""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from coral_probe.agent.framing import FrameReader, encode_varint, frame
from coral_probe.agent.runtime import AgentRuntime
from coral_probe.agent.subscriptions import AgentTarget
from coral_probe.gen.coral.sdk.v1 import sdk_pb2 as pb
from coral_probe.store import Store
from test_detach import coral_programs

pytestmark = pytest.mark.bpf
ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "scripts"


def emitted(store_or_coral, name: str) -> list[dict]:
    sql = "SELECT data FROM emitted_events WHERE name = ? ORDER BY timestamp"
    if isinstance(store_or_coral, Store):
        with store_or_coral.cursor() as cur:
            rows = cur.execute(sql, [name]).fetchall()
    else:
        rows = store_or_coral.query(sql, [name])
    return [json.loads(r[0]) for r in rows]


def test_seed_example_emits_exactly_the_slow_payments(coral):
    payments = ROOT / "examples" / "payments" / "payments"
    result = coral.run("run", str(ROOT / "examples" / "scripts" / "slow_payments.ts"), "--",
                       str(payments), "--calls", "20", "--slow-every", "5", "--slow-ms", "510")
    assert result.returncode == 0, result.stderr
    assert "saw 20 payments, 4 slow" in result.stdout
    slow = emitted(coral, "slow_payment")
    assert [s["customer"] for s in slow] == [5, 10, 15, 20]
    assert all(510 <= s["durationMs"] < 5000 for s in slow)
    assert emitted(coral, "payments_summary") == [{"calls": 20, "slow": 4}]
    status = coral.query("SELECT status, exit_code FROM script_executions")
    assert status == [("completed", 0)]


def test_every_event_arrives_in_order_at_full_rate(coral, targets):
    result = coral.run("run", str(SCRIPTS / "count_in_order.ts"), "--", str(targets["counter"]), "50000")
    assert result.returncode == 0, result.stderr
    assert emitted(coral, "count") == [{"events": 50000, "outOfOrder": 0}]


def test_every_thread_gets_its_exact_count(coral, targets):
    result = coral.run("run", str(SCRIPTS / "count_per_thread.ts"), "--", str(targets["threads"]), "4", "500")
    assert result.returncode == 0, result.stderr
    threads = emitted(coral, "per_thread")[0]["threads"]
    assert sorted((t["k"], t["events"], t["mixed"]) for t in threads) == \
        [(1, 500, False), (2, 1000, False), (3, 1500, False), (4, 2000, False)]


def test_iterator_break_detaches_while_the_script_runs(coral, targets):
    proc = coral.popen("run", str(SCRIPTS / "break_early.ts"), "--", str(targets["counter"]), "100000", "1000",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "broke after 10", line + proc.stderr.read()
        deadline = time.monotonic() + 5
        while coral_programs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert coral_programs() == []  # detached while the script is still alive
        assert proc.poll() is None
        out, err = proc.communicate(timeout=30)
        assert "done" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def _held_counter(counter: Path, calls: int, sleep_us: int = 0) -> subprocess.Popen:
    proc = subprocess.Popen([str(counter), str(calls), str(sleep_us)], env={**os.environ, "COUNTER_WAIT": "1"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def _release_and_finish(agent: AgentRuntime, target: subprocess.Popen, runs, subscribers: int) -> None:
    deadline = time.monotonic() + 30
    while agent.subscriptions.subscriber_count() < subscribers:
        assert time.monotonic() < deadline, "scripts did not subscribe"
        assert not any(r.done.is_set() for r in runs), "a script ended before subscribing"
        time.sleep(0.02)
    target.stdin.write("go\n")
    target.stdin.flush()
    target.wait(timeout=60)
    agent.subscriptions.end_all("test")
    for r in runs:
        assert r.wait(120), "script did not finish"


def test_two_scripts_on_one_function_both_see_every_event(tmp_path, targets):
    store = Store(tmp_path / "agent.duckdb")
    try:
        with AgentRuntime(store, echo=False) as agent:
            target = _held_counter(targets["counter"], 20000)
            where = AgentTarget(binary=str(targets["counter"]), pid=target.pid)
            runs = [agent.executor.start(SCRIPTS / "count_lost.ts", target=where, params={"label": label})
                    for label in ("a", "b")]
            _release_and_finish(agent, target, runs, subscribers=2)
            assert [r.status for r in runs] == ["completed", "completed"]
            counts = sorted(emitted(store, "count"), key=lambda c: c["label"])
            assert counts == [{"label": "a", "events": 20000, "lost": 0}, {"label": "b", "events": 20000, "lost": 0}]
            assert agent.subscriptions.active_probes() == 0
    finally:
        store.close()


def test_slow_script_loses_counted_events_without_hurting_the_fast_one(tmp_path, targets):
    calls = 20000
    store = Store(tmp_path / "agent.duckdb")
    try:
        # Paced target (~60 us a call): the fast script keeps up, the slow one
        # (1 ms an event) cannot, and its small queue overflows.
        with AgentRuntime(store, echo=False, max_queued_events=500) as agent:
            target = _held_counter(targets["counter"], calls, sleep_us=50)
            where = AgentTarget(binary=str(targets["counter"]), pid=target.pid)
            runs = [agent.executor.start(SCRIPTS / "count_lost.ts", target=where, params=params)
                    for params in ({"label": "fast"}, {"label": "slow", "delayMs": "1"})]
            _release_and_finish(agent, target, runs, subscribers=2)
            counts = {c["label"]: c for c in emitted(store, "count")}
            assert counts["fast"] == {"label": "fast", "events": calls, "lost": 0}
            slow = counts["slow"]
            assert slow["lost"] > 0 and slow["events"] + slow["lost"] == calls, slow
    finally:
        store.close()


def test_crash_mid_stream_leaves_no_probe_attached(tmp_path, targets):
    store = Store(tmp_path / "agent.duckdb")
    try:
        with AgentRuntime(store, echo=False) as agent:
            target = subprocess.Popen([str(targets["counter"]), "1000000", "1000"], stdout=subprocess.DEVNULL)
            try:
                run = agent.executor.start(SCRIPTS / "crash_mid_stream.ts",
                                           target=AgentTarget(binary=str(targets["counter"]), pid=target.pid))
                assert run.wait(60)
                assert run.status == "failed" and run.exit_code != 0
                deadline = time.monotonic() + 5
                while (agent.subscriptions.active_probes() or coral_programs()) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert agent.subscriptions.active_probes() == 0
                assert coral_programs() == []
                with store.cursor() as cur:
                    logs = cur.execute("SELECT line FROM script_logs WHERE stream = 'stderr'").fetchall()
                assert any("crashed on purpose mid-stream" in line for (line,) in logs)
            finally:
                target.kill()
                target.wait()
    finally:
        store.close()


def test_script_killed_at_its_timeout(coral):
    started = time.monotonic()
    result = coral.run("run", str(SCRIPTS / "loop_forever.ts"), "--timeout", "2")
    assert result.returncode == 124, result.stderr
    assert "coral: script stopped: timeout (2s), killed after the 5s grace period" in result.stderr
    assert time.monotonic() - started < 60
    assert coral.query("SELECT status, end_reason FROM script_executions") == [
        ("timeout", "timeout (2s), killed after the 5s grace period")]


def test_unbounded_allocation_stops_at_the_heap_cap(coral):
    result = coral.run("run", str(SCRIPTS / "allocate_forever.ts"), "--timeout", "120")
    assert result.returncode not in (0, 124), result.stderr
    assert "heap" in result.stderr.lower() or "out of memory" in result.stderr.lower()
    assert coral.query("SELECT status FROM script_executions") == [("failed",)]


def test_output_is_streamed_and_stored(coral):
    result = coral.run("run", str(SCRIPTS / "hello_logs.ts"))
    assert result.returncode == 3
    assert result.stdout.splitlines() == ["out line 1", "out line 2"]
    assert "err line 1" in result.stderr
    rows = coral.query("SELECT stream, line FROM script_logs ORDER BY timestamp, stream DESC")
    assert sorted(rows) == sorted([("stdout", "out line 1"), ("stderr", "err line 1"), ("stdout", "out line 2")])
    assert coral.query("SELECT status, exit_code FROM script_executions") == [("failed", 3)]


@pytest.mark.parametrize("script", ["read_file", "write_file", "tcp_connect", "env_var", "run_process", "load_ffi",
                                    "dynamic_import_outside"])
def test_sandbox_denies_at_run_time(coral, script):
    result = coral.run("run", str(SCRIPTS / "sandbox" / f"{script}.ts"))
    assert result.returncode != 0
    assert "NotCapable" in result.stderr or "PermissionDenied" in result.stderr or "Requires" in result.stderr, \
        result.stderr
    assert not Path("/tmp/coral-sandbox-escape").exists()


@pytest.mark.parametrize("script,reason", [
    ("import_remote", "it imports a remote or npm module"),
    ("import_npm", "it imports"),
    ("import_outside", "outside"),
])
def test_sandbox_refuses_imports_before_running(coral, script, reason):
    result = coral.run("run", str(SCRIPTS / "sandbox" / f"{script}.ts"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coral: script refused: ") and reason in lines[0], result.stderr
    assert "only @coral/sdk and files of their own directory" in lines[0]


def test_sibling_import_is_allowed(coral):
    result = coral.run("run", str(SCRIPTS / "sandbox" / "import_sibling.ts"))
    assert result.returncode == 0, result.stderr
    assert "sibling says 42" in result.stdout


def test_agent_survives_malformed_frames_and_bad_scripts(tmp_path, targets):
    store = Store(tmp_path / "agent.duckdb")
    try:
        with AgentRuntime(store, echo=False) as agent:
            for garbage in (b"\xff\xff\xff\xff\xff\xff", encode_varint(5) + b"\x0a\xff\xff\xff\xff", b"\x03abc"):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(agent.socket_path)
                    s.sendall(garbage)
                    body = FrameReader(s).read()
                    reply = pb.Response.FromString(body)
                    assert reply.error.code == "INVALID_ARGUMENT", reply
                    assert "malformed frame" in reply.error.message
            bad = agent.executor.start(SCRIPTS / "sandbox" / "read_file.ts", target=AgentTarget())
            assert bad.wait(60) and bad.status == "failed"
            # still healthy: a real request gets a real answer
            from coral_probe.agent.handlers import ExecutionContext
            agent.server.register("tok", ExecutionContext("e1", "s1", AgentTarget()))
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(agent.socket_path)
                s.sendall(frame(pb.Request(id=1, hello=pb.Hello(token="tok"))))
                s.sendall(frame(pb.Request(id=2, get_memory=pb.GetMemory())))
                reader = FrameReader(s)
                assert pb.Response.FromString(reader.read()).hello.execution_id == "e1"
                memory = pb.Response.FromString(reader.read()).memory
                assert 0 < memory.used_bytes < memory.total_bytes
    finally:
        store.close()


def test_at_most_five_scripts_at_once(tmp_path):
    store = Store(tmp_path / "agent.duckdb")
    try:
        with AgentRuntime(store, echo=False) as agent:
            runs = [agent.executor.start(SCRIPTS / "loop_forever.ts", target=AgentTarget(), timeout_s=60)
                    for _ in range(5)]
            from coral_probe.errors import CoralError
            with pytest.raises(CoralError, match="5 scripts are already running"):
                agent.executor.start(SCRIPTS / "loop_forever.ts", target=AgentTarget())
            agent.executor.kill(runs[0])
            assert runs[0].wait(30)
            agent.executor.start(SCRIPTS / "loop_forever.ts", target=AgentTarget(), timeout_s=60)
    finally:
        store.close()


def test_probe_attach_with_script_joins_the_session(coral, targets):
    result = coral.run("probe", "attach", "coral_work", "--args", "2", "-o", "jsonl", "--script",
                       str(SCRIPTS / "count_in_order.ts"), "--", str(targets["counter"]), "5000")
    assert result.returncode == 5000 % 7, result.stderr
    assert len(result.stdout.splitlines()) == 5000  # the session's own output
    assert emitted(coral, "count") == [{"events": 5000, "outOfOrder": 0}]
    assert coral.query("SELECT count(*) FROM probe_events") == [(5000,)]


def test_sdk_queries_answer_from_stored_probe_events(coral):
    payments = ROOT / "examples" / "payments" / "payments"
    # 20 payments: customers 5, 10, 15, 20 slow (100 ms), 7 and 14 declined (return 1)
    session = coral.run("probe", "attach", "ProcessPayment", "--args", "2", "-o", "jsonl", "--",
                        str(payments), "--calls", "20", "--slow-every", "5", "--slow-ms", "100")
    assert session.returncode == 0, session.stderr
    # The script has no target: listing another binary's functions is the operator's to allow.
    result = coral.run("run", str(SCRIPTS / "analytics.ts"), "--param", f"binary={payments}",
                       "--allow-probe", f"binary:{payments.resolve()}")
    assert result.returncode == 0, result.stderr
    a = emitted(coral, "analytics")[0]
    durations = sorted(r[0] for r in coral.query("SELECT duration_ns FROM probe_events"))
    assert 1e6 <= a["p50"] <= 30e6 and a["p99"] >= 99e6
    # From the agent's sketch: within 1% of the value of rank floor(q (n - 1)).
    assert a["p50"] == pytest.approx(durations[9], rel=0.01)
    assert a["p99"] == pytest.approx(durations[18], rel=0.01)
    assert a["errorRate"] == pytest.approx(2 / 20)
    assert sorted(customer for customer, _ in a["slow"]) == [5, 10, 15, 20]
    assert all(duration >= 90e6 for _, duration in a["slow"])
    assert sorted(a["errors"]) == [[7, 1], [14, 1]]
    assert a["top2"] == sorted(durations, reverse=True)[:2]
    assert a["rows"] == [{"n": 20}]
    assert a["fns"] == ["ProcessPayment", "ProcessRefund"]
    assert a["cpuOk"] and a["memOk"]
    assert "one read-only SELECT" in a["writeRefused"]
