"""The resident agent's two figures: DeployScript → the script's first probe
event in its loop (against `coral run` of the same script, start to first
event), and StreamScriptLogs --follow throughput of a script that prints fast
(against the script's own pipe read directly), with the lines lost counted:
none with the agent's log limit raised, every one at the default limit.

    /work/main/.venv/bin/python -m pytest benches/test_agent_scripts.py -k follow -s
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coral_probe.agent.sandbox import deno_binary
from coral_probe.api import client, pb
from helpers import report

SCRIPTS = Path(__file__).resolve().parent / "scripts"
ROUNDS = 5
PRINTED = 200_000


class Agent:
    """`coral agent start` on its own CORAL_HOME, until stop()."""

    def __init__(self, home: Path, *args: str):
        home.mkdir(exist_ok=True)
        self.home = home
        self.proc = subprocess.Popen([sys.executable, "-m", "coral_probe", "agent", "start", *args],
                                     env={**os.environ, "CORAL_HOME": str(home)}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        serving = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("coral agent: serving on"):
                    serving.set()
        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not serving.wait(0.05):
            assert self.proc.poll() is None and time.monotonic() < deadline, "\n".join(self.lines)
        self.channel = client.channel(None, home=home)
        self.stub = client.stub(self.channel)

    def deploy(self, name: str, script: Path, **params: str) -> pb.DeployScriptResponse:
        return self.stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
            name=name, code=script.read_text(), params=params, created_by="bench")), timeout=300)

    def follow(self, ref: str):
        """Every entry, as `coral script logs --follow` reads them (batches)."""
        for batch in self.stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref=ref, follow=True), timeout=600):
            yield from batch.entries

    def stop(self) -> None:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0, "\n".join(self.lines)


@pytest.fixture
def busy_counter(targets):
    """The target calls coral_work every 0.5 ms: a fresh probe's first hit is at most that far."""
    proc = subprocess.Popen([str(targets["counter"]), "100000000", "500"], stdout=subprocess.DEVNULL)
    yield os.path.realpath(targets["counter"])
    proc.kill()
    proc.wait()


def first_event(line: str) -> tuple[float, float]:
    """(the loop body's wall clock, the probe hit's) in ms, from first_event.ts's line."""
    words = line.split()
    return float(words[1]), float(words[3])


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def test_deploy_to_first_probe_event(benchmark, busy_counter, tmp_path):
    agent = Agent(tmp_path / "agent-home", "--allow-probe", f"binary:{busy_counter}")
    rounds: list[dict] = []

    def one_round() -> None:
        name = f"first-{len(rounds)}"
        started = time.time() * 1000
        agent.deploy(name, SCRIPTS / "first_event.ts", binary=busy_counter)
        answered = time.time() * 1000
        [line] = [e.line for e in agent.follow(name) if e.line.startswith("first_event_ms ")]
        seen, hit = first_event(line)
        rounds.append({"rpc_ms": answered - started, "to_probe_hit_ms": hit - started, "to_loop_ms": seen - started})

    try:
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    finally:
        agent.stop()

    peer: list[dict] = []
    env = {**os.environ, "CORAL_HOME": str(tmp_path / "run-home")}  # no agent there: `coral run` as today
    for _ in range(ROUNDS):
        started = time.time() * 1000
        run = subprocess.run([sys.executable, "-m", "coral_probe", "run", str(SCRIPTS / "first_event.ts"),
                              "--param", f"binary={busy_counter}", "--allow-probe", f"binary:{busy_counter}"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        seen, hit = first_event(next(x for x in run.stdout.splitlines() if x.startswith("first_event_ms ")))
        peer.append({"to_probe_hit_ms": hit - started, "to_loop_ms": seen - started})

    deploy_ms = median([r["to_loop_ms"] for r in rounds])
    run_ms = median([r["to_loop_ms"] for r in peer])
    # The RPC is the validation (deno info, then `deno check`); after it, the start proper.
    started_ms = median([r["to_loop_ms"] - r["rpc_ms"] for r in rounds])
    report("agent_deploy_to_first_event", median_ms=deploy_ms, best_ms=min(r["to_loop_ms"] for r in rounds),
           deploy_rpc_ms=median([r["rpc_ms"] for r in rounds]), rpc_to_loop_ms=started_ms,
           probe_hit_ms=median([r["to_probe_hit_ms"] for r in rounds]), target_ms=300.0,
           coral_run_median_ms=run_ms, coral_run_probe_hit_ms=median([r["to_probe_hit_ms"] for r in peer]),
           ratio=run_ms / deploy_ms, start_after_rpc_ratio=run_ms / started_ms)
    benchmark.extra_info.update(deploy_ms=deploy_ms, coral_run_ms=run_ms)


def raw_pipe_rate() -> float:
    """The peer: the same script under plain `deno run`, its stdout read straight from the pipe."""
    with open(SCRIPTS / "print_fast.ts") as f:
        code = f.read().replace('import * as coral from "@coral/sdk";\n', "").replace(
            "await coral.params()", f'{{ lines: "{PRINTED}" }}')
    started = time.perf_counter()
    proc = subprocess.Popen([deno_binary(), "run", "--no-prompt", "--no-config", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    proc.stdin.write(code.encode())
    proc.stdin.close()
    lines = sum(chunk.count(b"\n") for chunk in iter(lambda: proc.stdout.read1(65536), b""))
    seconds = time.perf_counter() - started
    assert proc.wait(60) == 0 and lines == PRINTED, lines
    return lines / seconds


UNCAPPED = "10000000"  # --log-lines-per-second far past what a script can print


def follow_rounds(agent: Agent, benchmark, prefix: str) -> list[dict]:
    """The fast printer deployed, then followed by a gRPC client reading the
    batches as `coral script logs --follow` does: lines received, lines lost."""
    rounds: list[dict] = []

    def one_round() -> None:
        name = f"{prefix}-{len(rounds)}"
        agent.deploy(name, SCRIPTS / "print_fast.ts", lines=str(PRINTED), wait_ms="2000")
        received = lost = 0
        first = last = None
        for batch in agent.stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref=name, follow=True), timeout=600):
            for entry in batch.entries:
                lost += entry.lost
                received += bool(entry.stream)
            last = time.perf_counter()
            first = first or last
        # Every printed line is either carried or counted as lost: none vanishes.
        assert received + lost == PRINTED, (received, lost)
        rounds.append({"received": received, "lost": lost, "seconds": last - first})

    benchmark.pedantic(one_round, rounds=2, iterations=1)
    return rounds


def cli_follow_rate(home: Path, name: str) -> tuple[int, int, float]:
    """`coral script logs --follow` itself (printing to a pipe): lines, lost, lines/s."""
    follower = subprocess.Popen([sys.executable, "-m", "coral_probe", "script", "logs", name, "--follow",
                                 "--tail", "10000"], env={**os.environ, "CORAL_HOME": str(home)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    received, first, last = 0, None, None
    for chunk in iter(lambda: follower.stdout.read1(65536), b""):
        received += chunk.count(b"\n")
        last = time.perf_counter()
        first = first or last
    notes = follower.stderr.read().decode().splitlines()
    assert follower.wait(60) == 0, notes
    lost = sum(int(x.split()[1]) for x in notes)
    return received, lost, received / (last - first)


def stored_rate(db: Path) -> float:
    """Lines/s the agent stored, best execution (first to last line's timestamp)."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT count(*) / ((epoch_us(max(timestamp)) - epoch_us(min(timestamp))) / 1e6)"
                           " FROM script_logs GROUP BY execution_id").fetchall()
    return max(r[0] for r in rows)


def test_follow_throughput_of_a_fast_printer(benchmark, tmp_path):
    home = tmp_path / "agent-home"
    agent = Agent(home, "--log-lines-per-second", UNCAPPED)
    try:
        rounds = follow_rounds(agent, benchmark, "printer")
        agent.deploy("printer-cli", SCRIPTS / "print_fast.ts", lines=str(PRINTED), wait_ms="2000")
        cli_received, cli_lost, cli_rate = cli_follow_rate(home, "printer-cli")
    finally:
        agent.stop()
    assert all(r["lost"] == 0 for r in rounds) and cli_lost == 0  # the limit raised: nothing dropped
    assert cli_received == PRINTED
    best = max(rounds, key=lambda r: r["received"] / r["seconds"])
    carried = best["received"] / best["seconds"]
    peer = raw_pipe_rate()
    report("follow_throughput", lines_per_s=carried, received=best["received"], lost=best["lost"],
           printed=PRINTED, target_lines_per_s=50_000.0, cli_lines_per_s=cli_rate,
           stored_lines_per_s=stored_rate(home / "agent.duckdb"), raw_pipe_lines_per_s=peer, ratio=carried / peer)
    benchmark.extra_info.update(lines_per_s=carried, cli_lines_per_s=cli_rate, lost=best["lost"])


def test_follow_at_the_default_log_limit(benchmark, tmp_path):
    """The agent's default limit (200 lines/s, bursts of 2,000): most lines are
    dropped, and each one is counted where it happened."""
    agent = Agent(tmp_path / "agent-home")
    try:
        rounds = follow_rounds(agent, benchmark, "limited")
    finally:
        agent.stop()
    best = rounds[-1]
    assert best["lost"] > 0
    report("follow_at_default_log_limit", received=best["received"], lost=best["lost"], printed=PRINTED,
           received_plus_lost=best["received"] + best["lost"])
    benchmark.extra_info.update(received=best["received"], lost=best["lost"])
