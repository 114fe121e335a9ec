"""Emit delivery: events a second from a script's emit() to the colony's
table (one agent pushing to one colony, every batch acknowledged), against
the peer: the same script on an agent without a colony, emit() to the
agent's DuckDB (every emit acknowledged once committed there). Target:
>= 50k events/s end to end on the 2-core VM.

The script, deployed on the agent, emits N events as fast as the SDK lets
it: groups of GROUP emits without awaiting each, the next group sent while
the previous one is answered. End to end is from its first emit (its wall
clock) to the first moment the colony's ExecuteQuery counts N rows. (Not
`coral run` through the agent: that streams every emit back to the command
too, a cost of its own.)

    /work/main/.venv/bin/python -m pytest benches/test_emit_delivery.py -s
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from coral_probe.api import client, pb, qpb, qpb_grpc
from helpers import report

N = 100_000
GROUP = 2000
ROUNDS = 3
POLL_S = 0.05

BURST = """
import * as coral from "@coral/sdk";
const p = await coral.params();
const n = Number(p.n), group = Number(p.group);
const first = performance.timeOrigin + performance.now();
let accepted = 0;
let previous: Promise<void> = Promise.resolve();
for (let i = 0; i < n; i += group) {
  const sent = [];
  for (let j = i; j < Math.min(n, i + group); j++) sent.push(coral.emit("bench", { i: j }));
  const answered = Promise.all(sent).then((ids) => { accepted += ids.length; });
  await previous;
  previous = answered;
}
await previous;
const done = performance.timeOrigin + performance.now();
console.log(JSON.stringify({ accepted, first_ms: first, done_ms: done }));
"""


class Server:
    """`coral agent start` or `coral colony start` on its own CORAL_HOME, until stop()."""

    def __init__(self, home: Path, *args: str):
        home.mkdir(exist_ok=True)
        self.home = home
        self.env = {**os.environ, "CORAL_HOME": str(home)}
        self.proc = subprocess.Popen([sys.executable, "-m", "coral_probe", *args], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.runs = 0  # scripts deployed
        serving = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if " serving on " in line:
                    serving.set()
        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not serving.wait(0.05):
            assert self.proc.poll() is None and time.monotonic() < deadline, "\n".join(self.lines)
        self.channel = client.channel(f"unix:{home / (args[0] + '.sock')}", home=home)
        self.stub = client.stub(self.channel)
        self.queries = qpb_grpc.QueryServiceStub(self.channel)

    def deploy(self, script: Path, **params: str) -> str:
        self.runs += 1
        return self.stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
            name=f"bench{self.runs}", code=script.read_text(), params=params, created_by="bench")),
            timeout=300).script_id

    def output(self, script_id: str) -> dict:
        """The JSON line the script printed, once it has ended."""
        deadline = time.monotonic() + 600
        while True:
            [execution] = self.stub.GetScriptStatus(pb.GetScriptStatusRequest(ref=script_id, tail=1),
                                                    timeout=30).executions or [None]
            if execution is not None and execution.has_exit_code:
                assert execution.exit_code == 0, execution.stderr
                return json.loads(execution.stdout.splitlines()[-1])
            assert time.monotonic() < deadline, "the script did not end"
            time.sleep(0.05)

    def stop(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(60)


def colony_count(colony: Server) -> int:
    reply = colony.queries.ExecuteQuery(qpb.ExecuteQueryRequest(sql="SELECT count(*) FROM emitted_events"),
                                        timeout=30)
    return json.loads(reply.rows_json)[0][0]


def local_rate(agent: Server, script: Path) -> float:
    out = agent.output(agent.deploy(script, n=str(N), group=str(GROUP)))
    assert out["accepted"] == N
    return N / ((out["done_ms"] - out["first_ms"]) / 1000)


def delivered_rate(agent: Server, colony: Server, script: Path) -> float:
    before = colony_count(colony)
    script_id = agent.deploy(script, n=str(N), group=str(GROUP))
    deadline = time.monotonic() + 600
    while colony_count(colony) < before + N:  # each asks the colony: not too often, it is busy
        assert time.monotonic() < deadline, "the colony did not get every event"
        time.sleep(POLL_S)
    held_at_ms = time.time() * 1000
    out = agent.output(script_id)
    assert out["accepted"] == N
    return N / ((held_at_ms - out["first_ms"]) / 1000)


def test_emit_delivery_to_the_colony(tmp_path):
    script = tmp_path / "burst.ts"
    script.write_text(BURST)
    limit = "--emits-per-second=10000000"
    colony = Server(tmp_path / "colony", "colony", "start", f"--agent=a1=unix:{tmp_path / 'agent' / 'agent.sock'}")
    agent = Server(tmp_path / "agent", "agent", "start", "--id=a1", limit,
                   f"--colony=unix:{tmp_path / 'colony' / 'colony.sock'}")
    peer = Server(tmp_path / "peer", "agent", "start", "--id=peer", limit)
    try:
        local_rate(peer, script)  # Deno's cache and DuckDB warm
        delivered, local = [], []
        for _ in range(ROUNDS):
            local.append(local_rate(peer, script))
            delivered.append(delivered_rate(agent, colony, script))
    finally:
        for server in (peer, agent, colony):
            server.stop()
    e2e, alone = statistics.median(delivered), statistics.median(local)
    report("emit delivery", events=N, delivered_per_s=e2e, agent_alone_per_s=alone, ratio_to_peer=e2e / alone,
           delivered_rounds=" ".join(f"{r:.0f}" for r in delivered), alone_rounds=" ".join(f"{r:.0f}" for r in local))
