"""A hostile script cannot exhaust the agent: every input the agent buffers
has a bound, past a bound the script gets a clear error and the excess is
counted, and the agent goes on serving. Real agents, real Deno scripts,
real sockets; memory-heavy attacks run inside a memory cgroup so that a
regression is OOM-killed there, not on the machine."""

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coral_probe.agent.framing import FrameReader, encode_varint, frame
from coral_probe.gen.coral.sdk.v1 import sdk_pb2 as pb

pytestmark = pytest.mark.bpf
ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "scripts"
TOKEN = "limits-test-token"

# An agent on its own (store, SDK server, subscriptions) with one known token,
# in a process of its own so that it can be put in a cgroup, have its
# threads counted and its descriptors limited. Stops when stdin closes.
AGENT = """
import sys
from pathlib import Path
from coral_probe.store import Store
from coral_probe.agent.handlers import ExecutionContext
from coral_probe.agent.runtime import AgentRuntime
from coral_probe.agent.subscriptions import AgentTarget

socket_path, db, token = sys.argv[1], sys.argv[2], sys.stdin.readline().strip()
store = Store(Path(db))
try:
    with AgentRuntime(store, socket_path=socket_path, echo=False) as agent:
        agent.server.register(token, ExecutionContext("e1", "s1", AgentTarget()))
        print("serving", flush=True)
        sys.stdin.read()
finally:
    store.close()
"""


class Agent:
    def __init__(self, tmp_path: Path, wrap=lambda cmd: cmd):
        self.socket_path = str(tmp_path / "sdk.sock")
        self.process = subprocess.Popen(wrap([sys.executable, "-c", AGENT, self.socket_path,
                                              str(tmp_path / "agent.duckdb")]),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=tmp_path)
        self.process.stdin.write(TOKEN + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "serving\n", self.process.stderr.read()

    @property
    def pid(self) -> int:
        return self.process.pid

    def threads(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.socket_path)  # blocking: waits while the backlog is full, as a script's connect does
        s.settimeout(20)
        return s

    def hello(self) -> tuple[socket.socket, pb.Response]:
        s = self.connect()
        s.sendall(frame(pb.Request(id=1, hello=pb.Hello(token=TOKEN))))
        return s, reply(s)

    def serves(self) -> bool:
        """A new connection gets its Hello and a real answer."""
        try:
            s, hello = self.hello()
        except (BrokenPipeError, ConnectionResetError):
            return False  # refused at the connection cap and closed before our Hello was written
        with s:
            if hello is None or hello.WhichOneof("result") != "hello":
                return False
            s.sendall(frame(pb.Request(id=2, get_memory=pb.GetMemory())))
            return reply(s).memory.total_bytes > 0

    def stop(self) -> str:
        """Stops the agent; its stderr."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.stderr.read()


def reply(s: socket.socket) -> pb.Response | None:
    body = FrameReader(s).read()
    return None if body is None else pb.Response.FromString(body)


@pytest.fixture
def agent(tmp_path):
    a = Agent(tmp_path)
    yield a
    a.stop()


# 6: connections before and after Hello


def test_partial_frames_before_hello_are_refused_at_64_kib(tmp_path, memory_cap):
    # 40 connections announcing 15 MB frames and sending 8 MB of each: 320 MB
    # buffered by an agent without a limit before Hello, past its 256 MB cap.
    cgroup = memory_cap(256 << 20)
    agent = Agent(tmp_path, cgroup.wrap)
    try:
        chunk = b"\0" * (8 << 20)
        connections = []
        for _ in range(40):
            s = agent.connect()
            try:
                s.sendall(encode_varint(15 << 20) + chunk)
            except OSError:
                pass  # refused (and closed) before all of it was sent
            connections.append(s)
        for s in connections:
            with s:
                refusal = reply(s)
                assert refusal is not None and refusal.error.code == "RESOURCE_EXHAUSTED", refusal
                assert refusal.error.message == f"frame of {15 << 20} bytes exceeds the 65536 byte limit before Hello"
        assert agent.process.poll() is None
        assert agent.serves()
        assert cgroup.peak_bytes() < 256 << 20
    finally:
        agent.stop()


def test_a_connection_without_hello_is_closed_at_the_deadline(agent):
    with agent.connect() as s:
        s.sendall(encode_varint(100) + b"\0" * 10)  # a frame begun, never finished
        refusal = reply(s)
        assert refusal.error.code == "DEADLINE_EXCEEDED"
        assert refusal.error.message == "no Hello within 5s of connecting"
        assert s.recv(1) == b""  # and closed


def test_idle_connections_cost_no_thread_and_are_capped(agent):
    before = agent.threads()
    idle = [agent.connect() for _ in range(600)]
    try:
        last = reply(idle[-1])  # past the cap: answered at once, not after a Hello
        assert last.error.code == "RESOURCE_EXHAUSTED"
        assert last.error.message == "the agent has 128 connections open (the limit)"
        assert agent.threads() <= before + 2
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 20
    while not agent.serves():  # the idle ones are gone at the latest at their Hello deadline
        assert time.monotonic() < deadline


def test_connections_per_script_are_capped(agent):
    sessions = [agent.hello() for _ in range(16)]
    try:
        assert all(hello.WhichOneof("result") == "hello" for _, hello in sessions)
        s, refused = agent.hello()
        with s:
            assert refused.error.code == "RESOURCE_EXHAUSTED"
            assert refused.error.message == "this script has 16 connections to the agent open (the limit)"
        sessions.pop()[0].close()
        deadline = time.monotonic() + 10
        while not agent.serves():  # as soon as the agent saw that one go
            assert time.monotonic() < deadline
    finally:
        for s, _ in sessions:
            s.close()


def test_a_request_past_the_frame_limit_is_refused_and_the_connection_goes_on(agent):
    s, hello = agent.hello()
    with s:
        data = json.dumps({"blob": "x" * (2 << 20)})
        s.sendall(frame(pb.Request(id=7, emit=pb.Emit(name="big", data_json=data))))
        refusal = reply(s)
        assert refusal.id == 7 and refusal.error.code == "RESOURCE_EXHAUSTED"
        assert refusal.error.message.startswith("emit refused: ")
        s.sendall(frame(pb.Request(id=8, get_memory=pb.GetMemory())))
        assert reply(s).memory.total_bytes > 0


# 7: out of descriptors


def test_accept_survives_running_out_of_descriptors(agent):
    soft, hard = resource.prlimit(agent.pid, resource.RLIMIT_NOFILE)
    open_now = len(os.listdir(f"/proc/{agent.pid}/fd"))
    resource.prlimit(agent.pid, resource.RLIMIT_NOFILE, (open_now + 8, hard))
    waiting = [agent.connect() for _ in range(40)]  # 8 accepted, then EMFILE; the rest wait in the backlog
    deadline = time.monotonic() + 10
    while len(os.listdir(f"/proc/{agent.pid}/fd")) < open_now + 8:
        assert time.monotonic() < deadline, "the agent did not run out of descriptors"
        time.sleep(0.05)
    time.sleep(0.5)  # accept() fails again and again meanwhile
    for s in waiting:
        s.close()
    # Still under the low limit: served once its descriptors are free again.
    assert agent.serves()
    stderr = agent.stop()
    said = [line for line in stderr.splitlines() if "cannot accept SDK connections" in line]
    assert said == ["coral agent: cannot accept SDK connections (Too many open files); retrying until it can"], \
        stderr
    assert "Traceback" not in stderr, stderr


# 8: script output


def test_script_output_is_bounded_and_what_is_past_the_bounds_is_counted(coral, memory_cap):
    cgroup = memory_cap(256 << 20)
    result = subprocess.run(cgroup.wrap(coral.cmd("run", str(SCRIPTS / "hostile_output.ts"))), env=coral.env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    truncated, dropped, bytes_dropped = coral.query(
        "SELECT log_lines_truncated, log_lines_dropped, log_bytes_dropped FROM script_executions")[0]
    assert truncated == 2  # the 10 MB and the 200 MB line
    assert dropped > 0
    assert bytes_dropped > 210 << 20
    stored = [line for (line,) in coral.query("SELECT line FROM script_logs WHERE stream = 'stdout'")]
    assert "first line" in stored and "a" * (16 << 10) in stored
    assert max(len(line) for line in stored) == 16 << 10
    assert sum(len(line) for line in stored) <= 16 << 20
    # The terminal shows exactly what was stored.
    assert sorted(result.stdout.splitlines()) == sorted(stored)
    assert "coral: the script went past its limits: 2 log lines truncated" in result.stderr


# 9: emits and the store


def test_emit_floods_are_refused_counted_and_the_store_stays_usable(coral, memory_cap):
    cgroup = memory_cap(1 << 30)
    result = subprocess.run(cgroup.wrap(coral.cmd("run", str(SCRIPTS / "hostile_emit_flood.ts"), "--timeout", "30")),
                            env=coral.env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == '10MB: 0 accepted, refused {"RESOURCE_EXHAUSTED":11}'
    assert lines[1] == '1MB: 0 accepted, refused {"RESOURCE_EXHAUSTED":107}'
    accepted = int(lines[2].split()[1])
    assert 0 < accepted < 3000
    assert lines[2] == f'60KB: {accepted} accepted, refused {{"RESOURCE_EXHAUSTED":{3000 - accepted}}}'
    assert coral.query("SELECT emits_refused FROM script_executions") == [(11 + 107 + 3000 - accepted,)]
    assert coral.query("SELECT count(*) FROM emitted_events") == [(accepted,)]
    # The same CORAL_HOME afterwards: a run and a query work.
    again = coral.run("run", str(SCRIPTS / "hello_logs.ts"), timeout=60)
    assert again.returncode == 3, again.stderr
    read = coral.run("query", "sql", "SELECT count(*) AS n FROM emitted_events", timeout=60)
    assert read.returncode == 0 and str(accepted) in read.stdout, read.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs: the agent's database fills it."""
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_failing_store_ends_the_run_with_one_line_and_recovers(small_disk):
    from conftest import Coral

    coral = Coral(small_disk)
    result = coral.run("run", str(SCRIPTS / "hostile_fill_store.ts"), "--timeout", "60", timeout=90)
    assert result.returncode not in (0, 124), result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coral: script stopped: the agent's database failed: "), \
        result.stderr[-2000:]
    assert "No space left on device" in lines[0]
    # Space again: the same database takes the next run and answers queries.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = coral.run("run", str(SCRIPTS / "hello_logs.ts"), timeout=60)
    assert again.returncode == 3, again.stderr
    read = coral.run("query", "sql", "SELECT count(*) AS n FROM emitted_events WHERE name = 'fill'", timeout=60)
    assert read.returncode == 0, read.stderr
    stored = coral.query("SELECT count(*) FROM emitted_events WHERE name = 'fill'")[0][0]
    assert stored > 0 and str(stored) in read.stdout


# 10: subscriptions


def test_subscriptions_per_script_are_capped(coral, targets):
    result = coral.run("run", str(SCRIPTS / "hostile_many_streams.ts"), "--binary", str(targets["counter"]),
                       timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"stream {i}: open" for i in range(1, 9)] + [
        "stream 9: RESOURCE_EXHAUSTED: this script has 8 subscriptions open (the limit); close a stream "
        "(break out of its loop) first"]


def test_subscriptions_in_total_are_capped(tmp_path, targets):
    from coral_probe.agent.handlers import ExecutionContext
    from coral_probe.agent.runtime import AgentRuntime
    from coral_probe.agent.subscriptions import AgentTarget
    from coral_probe.store import Store

    store = Store(tmp_path / "agent.duckdb")
    streams = []
    try:
        with AgentRuntime(store, echo=False) as runtime:
            where = AgentTarget(binary=str(targets["counter"]))
            for n in range(5):
                runtime.server.register(f"t{n}", ExecutionContext(f"e{n}", "s", where))

            def subscribe(token: str) -> pb.Response:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(60)
                s.connect(runtime.socket_path)
                streams.append(s)
                s.sendall(frame(pb.Request(id=1, hello=pb.Hello(token=token))))
                s.sendall(frame(pb.Request(id=2, subscribe=pb.Subscribe(kind=pb.PROBE_KIND_UPROBE,
                                                                        name="coral_work"))))
                reader = FrameReader(s)
                assert pb.Response.FromString(reader.read()).WhichOneof("result") == "hello"
                return pb.Response.FromString(reader.read())

            answers = [subscribe(f"t{n}").WhichOneof("result") for n in range(4) for _ in range(8)]
            assert answers == ["subscribe"] * 32
            refused = subscribe("t4")
            assert refused.error.code == "RESOURCE_EXHAUSTED"
            assert refused.error.message == ("the agent has 32 subscriptions open (the limit); close a stream "
                                             "first")
            streams.pop(0).close()
            deadline = time.monotonic() + 10
            while subscribe("t4").WhichOneof("result") != "subscribe":  # once the agent saw that one go
                assert time.monotonic() < deadline
    finally:
        for s in streams:
            s.close()
        store.close()


# 13: streams, queries and probes at a script's end


@pytest.mark.parametrize("same", ["0", "1"], ids=["two-probes", "one-probe"])
def test_a_never_read_stream_does_not_hold_up_another_streams_end(coral, targets, same):
    result = coral.run("run", str(SCRIPTS / "hostile_never_read.ts"), "--param", f"same={same}", "--timeout", "40",
                       "--", str(targets["counter"]), "50000", "50", timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    ended = [line for line in result.stdout.splitlines() if line.startswith("the second stream ended")]
    assert len(ended) == 1 and int(ended[0].split()[-2]) > 0, result.stdout[-2000:]


def test_a_script_ending_with_queries_in_flight_ends_cleanly(coral):
    result = coral.run("run", str(SCRIPTS / "hostile_queries_in_flight.ts"), timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "leaving with queries in flight\n"
    assert result.stderr == ""
    assert coral.query("SELECT status, exit_code FROM script_executions") == [("completed", 0)]


def test_a_script_leaving_its_loop_and_ending_leaves_no_noise(coral, targets):
    from test_detach import coral_programs

    result = coral.run("run", str(SCRIPTS / "hostile_break_exit.ts"), "--", str(targets["counter"]), "100000", "1000",
                       timeout=60)
    assert result.returncode == 0, result.stderr
    assert "broke after 10" in result.stdout
    assert result.stderr == ""  # no "Failed to detach BPF from uprobe", no leaked objects
    assert coral_programs() == []
