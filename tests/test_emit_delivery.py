"""Emitted events reach the colony at least once and are stored there once:
a real `coral agent start --colony` pushing to a real `coral colony start`,
real Deno scripts emitting; the colony killed (SIGKILL) in the middle of a
burst, an agent stopped with events the colony never got."""

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest

from agents import Agent
from conftest import Coral
from coral_probe.api import client, qpb, qpb_grpc

# Emits `n` numbered events ("burst", {i}) in groups of `batch` sent without
# waiting for each reply, `pause_ms` between groups; severities in turn.
# Prints how many were accepted, and the codes of the refused ones.
BURST = """
import * as coral from "@coral/sdk";
const p = await coral.params();
const n = Number(p.n), batch = Number(p.batch ?? "100"), pauseMs = Number(p.pause_ms ?? "0");
const severities = ["debug", "info", "warning", "error", "critical"] as const;
let accepted = 0;
const refused: Record<string, number> = {};
for (let i = 0; i < n; i += batch) {
  const sent = [];
  for (let j = i; j < Math.min(n, i + batch); j++) sent.push(coral.emit("burst", { i: j }, severities[j % 5]));
  for (const r of await Promise.allSettled(sent)) {
    if (r.status === "fulfilled") accepted++;
    else {
      const code = (r.reason as { code?: string }).code ?? "none";
      refused[code] = (refused[code] ?? 0) + 1;
    }
  }
  if (pauseMs) await new Promise((resolve) => setTimeout(resolve, pauseMs));
}
console.log(JSON.stringify({ accepted, refused }));
"""

# In one group: valid emits between ones each refused for its own reason
# (the last, JSON that Python's parser takes and DuckDB's does not: a lone
# surrogate); then one more emit, alone.
MIXED = """
import * as coral from "@coral/sdk";
const outcomes = await Promise.allSettled([
  coral.emit("good", { k: 1 }),
  coral.emit("", { k: 2 }),
  coral.emit("good", { k: 3 }, "loud" as never),
  coral.emit("x".repeat(300), { k: 4 }),
  coral.emit("good", { k: 5 }, "error"),
  coral.emit("good", { k: 6, s: "\\ud800" }),
]);
outcomes.push(...await Promise.allSettled([coral.emit("after", { k: 7 })]));
console.log(JSON.stringify(outcomes.map((o) => o.status === "fulfilled" ? "ok" : o.reason.code)));
"""

ROW = "id, seq, name, data::VARCHAR, severity, script_id, execution_id, epoch_us(timestamp)"


class Colony:
    """A running `coral colony start` on its own home, its stderr collected."""

    def __init__(self, home: Path, agent_id: str, agent_home: Path):
        self.coral = Coral(home)
        self.socket = home / "colony.sock"
        self.proc = self.coral.popen("colony", "start", "--agent", f"{agent_id}=unix:{agent_home / 'agent.sock'}",
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        serving = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("coral colony: serving on"):
                    serving.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not serving.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("colony did not start: " + "\n".join(self.lines))
        self.channel = client.channel(f"unix:{self.socket}", home=home)
        self.queries = qpb_grpc.QueryServiceStub(self.channel)

    def query(self, sql: str) -> list[list]:
        """Through the colony's ExecuteQuery: its own emitted_events."""
        return json.loads(self.queries.ExecuteQuery(qpb.ExecuteQueryRequest(sql=sql), timeout=30).rows_json)

    def count(self) -> int:
        return self.query("SELECT count(*) FROM emitted_events")[0][0]

    def wait_for(self, n: int, within_s: float = 120) -> None:
        deadline = time.monotonic() + within_s
        while (have := self.count()) < n:
            assert time.monotonic() < deadline, f"the colony has {have} of {n} events"
            time.sleep(0.1)

    def kill(self) -> None:
        self.channel.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def rows(self, sql: str) -> list[tuple]:
        """From its DuckDB file, once it has stopped."""
        con = duckdb.connect(str(self.coral.home / "colony.duckdb"), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


@pytest.fixture
def colony_home(tmp_path) -> Path:
    home = tmp_path / "colony-home"
    home.mkdir()
    return home


@pytest.fixture
def started(coral, colony_home):
    """start_agent(*args) and start_colony(): stopped at the end of the test if still running."""
    running: list = []

    def start_agent(*args: str) -> Agent:
        running.append(Agent(coral, "--id", "a1", "--colony", f"unix:{colony_home / 'colony.sock'}", *args))
        return running[-1]

    def start_colony() -> Colony:
        running.append(Colony(colony_home, "a1", coral.home))
        return running[-1]

    yield start_agent, start_colony
    for process in reversed(running):
        process.stop()


def write_script(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(code)
    return path


def agent_rows(agent: Agent, sql: str) -> list[list]:
    stub = qpb_grpc.QueryServiceStub(agent.channel)
    return json.loads(stub.ExecuteQuery(qpb.ExecuteQueryRequest(sql=sql, max_rows=10_000), timeout=30).rows_json)


def test_colony_killed_mid_burst_ends_with_every_event_once(coral, started, tmp_path):
    start_agent, start_colony = started
    colony = start_colony()
    agent = start_agent("--emits-per-second", "100000")
    script = write_script(tmp_path, "burst.ts", BURST)
    # 10,000 events over at least 3 s (100 groups, 30 ms apart): the colony dies while they come.
    run = coral.popen("run", str(script), "--param", "n=10000", "--param", "batch=100", "--param", "pause_ms=30",
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    colony.wait_for(1)
    colony.kill()
    assert run.poll() is None, "the burst ended before the colony was killed"
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"accepted": 10_000, "refused": {}}
    assert agent_rows(agent, "SELECT count(*) FROM emitted_events") == [[10_000]]

    colony = start_colony()
    colony.wait_for(10_000)
    agent.stop()  # nothing more to come: what the colony holds now is final
    assert colony.stop() == 0
    assert colony.rows("SELECT count(*), count(DISTINCT id), count(DISTINCT seq), min(seq), max(seq),"
                       " count(DISTINCT data->>'i') FROM emitted_events WHERE agent_id = 'a1'") == \
        [(10_000, 10_000, 10_000, 1, 10_000, 10_000)]
    # As the agent stored them: ids, order, names, data, severity, script and execution, time.
    mine = coral.query(f"SELECT {ROW} FROM emitted_events ORDER BY seq")
    assert colony.rows(f"SELECT {ROW} FROM emitted_events ORDER BY seq") == mine
    assert {row[4] for row in mine} == {"debug", "info", "warning", "error", "critical"}
    [(execution_id, script_id)] = coral.query("SELECT execution_id, script_id FROM script_executions")
    assert {(row[5], row[6]) for row in mine} == {(script_id, execution_id)}
    assert coral.query("SELECT acked_seq FROM colony_delivery") == [(10_000,)]


def test_an_agent_stopped_with_unsent_events_sends_them_after_its_restart(coral, started, colony_home, tmp_path):
    start_agent, start_colony = started
    agent = start_agent("--emits-per-second", "1000")
    script = write_script(tmp_path, "burst.ts", BURST)
    # A deployed script, with the colony down.
    deployed = coral.run("script", "deploy", "--name", "burst", "--file", str(script), "--param", "n=300",
                         "--json", timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    script_id = json.loads(deployed.stdout)["script_id"]
    deadline = time.monotonic() + 120
    while agent_rows(agent, "SELECT count(*) FROM emitted_events") != [[300]]:
        assert time.monotonic() < deadline, "the deployed script did not emit its 300 events"
        time.sleep(0.1)
    time.sleep(4)  # retries meanwhile: 0.1, 0.2, 0.4, 0.8, 1.6 s apart
    assert agent.terminate() == 0
    unreachable = [line for line in agent.lines if "unreachable" in line]
    assert len(unreachable) == 1, agent.lines  # one line, not one per retry
    assert unreachable[0].startswith(f"coral agent: colony unix:{colony_home / 'colony.sock'} unreachable (UNAVAILABLE")
    assert coral.query("SELECT count(*) FROM colony_delivery WHERE acked_seq > 0") == [(0,)]

    colony = start_colony()
    agent = start_agent()
    colony.wait_for(300)
    assert any(line == f"coral agent: pushing emits to colony unix:{colony.socket} as agent a1"
               for line in agent.lines), agent.lines
    agent.stop()
    assert colony.stop() == 0
    assert colony.rows("SELECT agent_id, script_id, count(*), count(DISTINCT id) FROM emitted_events"
                       " GROUP BY ALL") == [("a1", script_id, 300, 300)]
    assert colony.rows(f"SELECT {ROW} FROM emitted_events ORDER BY seq") == \
        coral.query(f"SELECT {ROW} FROM emitted_events ORDER BY seq")


@pytest.fixture
def agent_with(coral):
    """agent_with(*args): a `coral agent start` without a colony, stopped at the end."""
    running: list[Agent] = []

    def start(*args: str) -> Agent:
        running.append(Agent(coral, *args))
        return running[-1]

    yield start
    for agent in running:
        agent.stop()


def test_the_rate_limit_refuses_and_counts_past_emits_per_second(coral, agent_with, tmp_path):
    agent = agent_with("--emits-per-second", "20")  # bursts of 200
    script = write_script(tmp_path, "burst.ts", BURST)
    result = coral.run("run", str(script), "--param", "n=600", "--param", "batch=600", timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    accepted, refused = outcome["accepted"], outcome["refused"]["RESOURCE_EXHAUSTED"]
    assert 200 <= accepted < 600 and accepted + refused == 600
    assert agent_rows(agent, "SELECT count(*) FROM emitted_events") == [[accepted]]
    assert agent_rows(agent, "SELECT emits_refused FROM script_executions") == [[refused]]


def test_emits_sent_together_are_answered_each_for_itself(coral, agent_with, tmp_path):
    agent = agent_with()
    result = coral.run("run", str(write_script(tmp_path, "mixed.ts", MIXED)), timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == ["ok", "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                                                          "INVALID_ARGUMENT", "ok", "INVALID_ARGUMENT", "ok"]
    assert agent_rows(agent, "SELECT data->>'k', severity, seq FROM emitted_events ORDER BY seq") == [
        ["1", "info", 1], ["5", "error", 2], ["7", "info", 3]]


def test_events_of_a_file_made_before_seq_are_numbered_and_sent(coral, started):
    # emitted_events as agents wrote it before it had a seq.
    con = duckdb.connect(str(coral.db))
    con.execute("CREATE TABLE emitted_events (id VARCHAR PRIMARY KEY, timestamp TIMESTAMPTZ NOT NULL,"
                " name VARCHAR NOT NULL, data JSON, severity VARCHAR NOT NULL, script_id VARCHAR,"
                " execution_id VARCHAR)")
    con.execute("INSERT INTO emitted_events VALUES ('old-b', '2026-01-01 00:00:02+00', 'old', '{\"n\": 2}', 'info',"
                " 's', 'x'), ('old-a', '2026-01-01 00:00:01+00', 'old', '{\"n\": 1}', 'error', 's', 'x')")
    con.close()
    start_agent, start_colony = started
    colony = start_colony()
    agent = start_agent()
    colony.wait_for(2)
    agent.stop()
    assert colony.stop() == 0
    assert coral.query("SELECT id, seq FROM emitted_events ORDER BY seq") == [("old-a", 1), ("old-b", 2)]
    assert colony.rows(f"SELECT {ROW} FROM emitted_events ORDER BY seq") == \
        coral.query(f"SELECT {ROW} FROM emitted_events ORDER BY seq")


def test_connections_that_never_read_their_answers_hold_up_only_themselves(tmp_path):
    from test_agent_limits import Agent as SdkAgent, reply

    from coral_probe.agent.framing import frame
    from coral_probe.agent.server import EMIT_WRITERS
    from coral_probe.gen.coral.sdk.v1 import sdk_pb2 as pb

    agent = SdkAgent(tmp_path)
    try:
        flood = b"".join(frame(pb.Request(id=i, emit=pb.Emit(name="flood", data_json="{}"))) for i in range(2, 20_002))
        hostile = []
        for _ in range(EMIT_WRITERS + 2):  # more than the threads that store emits
            s, hello = agent.hello()
            assert hello.WhichOneof("result") == "hello"
            # Their answers fill the socket, unread; the agent's writes to it block.
            threading.Thread(target=s.sendall, args=(flood,), daemon=True).start()
            hostile.append(s)
        time.sleep(2)
        s, _ = agent.hello()
        with s:
            s.sendall(frame(pb.Request(id=7, emit=pb.Emit(name="polite", data_json="{}"))))
            answer = reply(s)  # within the socket's 20 s timeout
        assert answer.id == 7 and (answer.WhichOneof("result") == "emit" or
                                   answer.error.code == "RESOURCE_EXHAUSTED"), answer
    finally:
        for s in hostile:
            s.close()
        agent.stop()
