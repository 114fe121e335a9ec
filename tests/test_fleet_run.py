"""`coral run` elsewhere: on one agent by its address (`--agent unix:PATH`,
or HOST:PORT with its token), and on every agent of a service through a
colony (`--colony ADDR --targets SERVICE`, colony/fleet_run.py). Real
agents on CORAL_HOMEs of their own, a real `coral colony start`, real Deno;
the client runs from a home no agent serves."""

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agents import Agent
from colonies import Colony
from conftest import Coral
from test_agent_bad_input import tcp_port
from test_agent_transport import write_token

SCRIPTS = Path(__file__).resolve().parent / "scripts"
LINES = 40

# Every agent prints the same numbered lines, then exits with the code asked.
NUMBERED = f"""
import * as coral from "@coral/sdk";

const {{ code }} = await coral.params();
for (let i = 0; i < {LINES}; i++) console.log(`line ${{i}}`);
console.error("done");
Deno.exit(Number(code));
"""
# Says it started, then runs until stopped.
FOREVER = """
console.log("started");
setInterval(() => {}, 1000);
"""


def home(tmp_path: Path, name: str) -> Coral:
    path = tmp_path / name
    path.mkdir()
    return Coral(path)


def socket_of(agent: Agent) -> str:
    return f"unix:{agent.coral.home}/agent.sock"


@pytest.fixture
def fleet(tmp_path, targets):
    """Agents a1 and a2, both serving `payments`, and a colony over them."""
    agents = {agent_id: Agent(home(tmp_path, agent_id), "--id", agent_id,
                              "--service", f"payments={targets['counter']}") for agent_id in ("a1", "a2")}
    colony = Colony(home(tmp_path, "colony"), {agent_id: socket_of(a) for agent_id, a in agents.items()})
    yield colony, agents
    colony.stop()
    for agent in agents.values():
        agent.stop()


def script(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(code)
    return path


def colony_address(colony: Colony) -> str:
    return f"unix:{colony.socket}"


def test_a_run_on_an_agent_by_address_streams_and_exits_with_the_scripts_code(tmp_path):
    agent = Agent(home(tmp_path, "a1"), "--id", "a1")
    token = write_token(tmp_path / "token", "fleet-secret")
    tcp = Agent(home(tmp_path, "tcp"), "--id", "tcp", "--listen", "127.0.0.1:0", "--token-file", str(token))
    try:
        client = home(tmp_path, "client")  # no agent serves it: the script goes where --agent says
        by_socket = client.run("run", str(SCRIPTS / "hello_logs.ts"), "--agent", socket_of(agent))
        by_tcp = client.run("run", str(SCRIPTS / "hello_logs.ts"), "--agent", f"127.0.0.1:{tcp_port(tcp)}",
                            "--token-file", str(token))
        for result in (by_socket, by_tcp):
            assert (result.returncode, result.stdout, result.stderr) == (3, "out line 1\nout line 2\n",
                                                                          "err line 1\n")
        assert any("for `coral run`" in line for line in agent.lines)
        assert any("for `coral run`" in line for line in tcp.lines)
        no_token = client.run("run", str(SCRIPTS / "hello_logs.ts"), "--agent", f"127.0.0.1:{tcp_port(tcp)}")
        assert no_token.returncode != 0 and len(no_token.stderr.splitlines()) == 1, no_token.stderr
        assert no_token.stderr.startswith("coral: ") and not no_token.stdout
    finally:
        agent.stop()
        tcp.stop()
    gone = client.run("run", str(SCRIPTS / "hello_logs.ts"), "--agent", socket_of(agent))
    assert (gone.returncode, gone.stderr) == (1, f"coral: no agent at {socket_of(agent)} "
                                                 "(start one with `coral agent start`)\n")


def test_a_fleet_run_prefixes_each_agents_complete_lines(fleet, tmp_path):
    colony, agents = fleet
    path = script(tmp_path, "numbered.ts", NUMBERED)
    client = home(tmp_path, "client")
    result = client.run("run", str(path), "--param", "code=0", "--colony", colony_address(colony),
                        "--targets", "payments")
    assert result.returncode == 0, result.stderr
    for agent_id in agents:
        mine = [line for line in result.stdout.splitlines() if line.startswith(f"[{agent_id}] ")]
        assert mine == [f"[{agent_id}] line {i}" for i in range(LINES)]
    assert len(result.stdout.splitlines()) == 2 * LINES
    assert sorted(result.stderr.splitlines()) == ["[a1] done", "[a2] done"]

    failed = client.run("run", str(path), "--param", "code=3", "--colony", colony_address(colony),
                        "--targets", "payments")
    assert failed.returncode == 3
    assert len(failed.stdout.splitlines()) == 2 * LINES
    *done, last = failed.stderr.splitlines()
    assert sorted(done) == ["[a1] done", "[a2] done"]
    assert last in ("coral: exit code 3 from agent a1 (also non-zero: a2)",
                     "coral: exit code 3 from agent a2 (also non-zero: a1)")


def test_a_fleet_run_of_an_unknown_service_names_the_known_ones(fleet, tmp_path):
    colony, _ = fleet
    result = home(tmp_path, "client").run("run", str(SCRIPTS / "hello_logs.ts"), "--colony", colony_address(colony),
                                          "--targets", "billing")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "coral: unknown service 'billing': no agent knows it (known: payments)\n"


def test_a_script_every_agent_refuses_is_one_error_line_per_agent(fleet, tmp_path):
    colony, _ = fleet
    path = script(tmp_path, "broken.ts", 'import * as coral from "@coral/sdk";\nconst = 3;\n')
    result = home(tmp_path, "client").run("run", str(path), "--colony", colony_address(colony),
                                          "--targets", "payments")
    assert result.returncode == 1 and not result.stdout
    *refused, last = result.stderr.splitlines()
    assert sorted(line.split("]")[0] for line in refused) == ["coral: [a1", "coral: [a2"], result.stderr
    assert all("script refused" in line for line in refused), result.stderr
    assert last.startswith("coral: exit code 1 from agent a")


def test_ctrl_c_stops_the_fleet_run_on_every_agent(fleet, tmp_path):
    colony, agents = fleet
    path = script(tmp_path, "forever.ts", FOREVER)
    run = home(tmp_path, "client").popen("run", str(path), "--colony", colony_address(colony), "--targets",
                                         "payments", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started: list[str] = []
    reader = threading.Thread(target=lambda: started.extend(iter(run.stdout.readline, "")), daemon=True)
    reader.start()
    wait_until("both agents started the script", lambda: sorted(started) == ["[a1] started\n", "[a2] started\n"])
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=60) == 128 + signal.SIGINT
    assert run.stderr.read() == "coral: script stopped on every agent: interrupt\n"
    for agent in agents.values():
        wait_until("the agent stopped its run", lambda: any(
            " ended stopped" in line for line in agent.lines if line.startswith("coral agent: execution ")))


def wait_until(what: str, predicate, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within_s:.0f} s")
        time.sleep(0.1)
