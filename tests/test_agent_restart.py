"""Deployed scripts survive the agent: a real `coral agent start` killed with
SIGKILL while a daemon script holds a uprobe takes its probes and its Deno
processes with it, and the next agent on the same home marks the cut
execution interrupted, runs the daemon script again (a new execution whose
emits carry its own id) and does not re-run the ad-hoc one. A clean SIGTERM
restart brings the daemon script back too."""

import signal
import subprocess
import time
from pathlib import Path

import pytest

from coral_probe.agent.cgroups import ScriptCgroup
from coral_probe.api import pb
from agents import bpf_objects_of, still_loaded
from test_agent_service import held_counter, wait_for_line

pytestmark = pytest.mark.bpf

# Attaches, emits one row per call and says so. The ticks keep its log lines
# flowing: a line is stored when the next one comes.
WATCHER = """
import * as coral from "@coral/sdk";

const { binary } = await coral.params();
setInterval(() => console.log("tick"), 300);
const calls = coral.trace.uprobe("coral_work", { binary, args: 1 });
await calls.ready();
console.log("subscribed");
for await (const e of calls) {
  await coral.emit("restart_work", { i: e.args[0] });
  console.log(`emitted ${e.args[0]}`);
}
"""
# Runs until stopped, doing nothing the agent has to answer.
IDLER = "setInterval(() => console.log('tick'), 300);\n"
CALLS = 3
GONE_WITHIN_S = 30


def deploy(stub, name: str, code: str, mode, **params: str) -> str:
    reply = stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
        name=name, code=code, params=params, mode=mode, timeout_seconds=3600,
        created_by="test_agent_restart")), timeout=120)
    return reply.script_id


def executions(stub, ref: str) -> list:
    """Newest first."""
    return list(stub.GetScriptStatus(pb.GetScriptStatusRequest(ref=ref, tail=10), timeout=30).executions)


def wait_running(stub, ref: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = executions(stub, ref)
        if runs and runs[0].status == pb.SCRIPT_STATUS_RUNNING:
            return runs[0].execution_id
        time.sleep(0.1)
    pytest.fail(f"{ref}: no running execution")


def probe_calls(counter: Path, stub) -> None:
    """CALLS calls of coral_work, each emitted by the watcher before it returns."""
    proc = held_counter(counter, CALLS)
    try:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == CALLS % 7
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for_line(stub, "watcher", f"emitted {CALLS}")


def proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state, parent pid) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 1:].split()
    return name, rest[0], int(rest[1])


def deno_children(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and (stat := proc_stat(int(p.name))) and stat[0] == "deno" and stat[2] == pid]


def alive(pid: int) -> bool:
    """Neither gone nor a zombie (dead, waiting for init to reap it)."""
    stat = proc_stat(pid)
    return stat is not None and stat[1] != "Z"


def wait_until(what: str, done) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} after {GONE_WITHIN_S}s")
        time.sleep(0.1)


def emitted(coral) -> dict[str, list[int]]:
    rows = coral.query("SELECT execution_id, list(json_extract(data, '$.i')::INT ORDER BY 1) FROM emitted_events"
                       " WHERE name = 'restart_work' GROUP BY execution_id")
    return {execution_id: sorted(values) for execution_id, values in rows}


def test_kill_9_then_restart_runs_the_daemon_again_and_not_the_ad_hoc_one(agent_of, coral, targets):
    agent = agent_of()
    watcher = deploy(agent.stub, "watcher", WATCHER, pb.SCRIPT_MODE_DAEMON, binary=str(targets["counter"]))
    oneshot = deploy(agent.stub, "oneshot", IDLER, pb.SCRIPT_MODE_AD_HOC)
    wait_for_line(agent.stub, "watcher", "subscribed")
    probe_calls(targets["counter"], agent.stub)
    first = wait_running(agent.stub, "watcher")
    cut_short = wait_running(agent.stub, "oneshot")
    held = bpf_objects_of(agent.proc.pid)
    assert held["prog"] and held["link"], held  # its uprobe, in the kernel through the agent's fds
    scripts = deno_children(agent.proc.pid)
    assert len(scripts) == 2, scripts

    agent.channel.close()
    agent.proc.kill()
    assert agent.proc.wait(30) == -signal.SIGKILL
    # The kernel ends both: the probes with the agent's fds, the scripts by their parent-death signal.
    wait_until("BPF objects of the killed agent still loaded", lambda: not still_loaded(held))
    wait_until("Deno scripts of the killed agent still running", lambda: not any(map(alive, scripts)))
    # What a script could leave in its cgroup (a process of its own) goes at the restart.
    group = ScriptCgroup.left(f"x{first}")
    assert group is not None
    leftover = subprocess.Popen(["/bin/sh", "-c", 'for f; do echo $$ > "$f"; done; exec sleep 600', "sh",
                                 *group.procs_files])

    try:
        agent = agent_of()
        assert leftover.wait(GONE_WITHIN_S) == -signal.SIGKILL
    finally:
        if leftover.poll() is None:
            leftover.kill()
    assert ("coral: after a restart: 2 execution(s) marked interrupted, 1 daemon script(s) started again,"
            " 1 ad-hoc script(s) not run again") in agent.lines, agent.lines
    assert ScriptCgroup.left(f"x{first}") is None and ScriptCgroup.left(f"x{cut_short}") is None
    assert not list(Path("/dev/shm").glob(f"coral-*-x{first}"))

    second = wait_running(agent.stub, "watcher")
    assert second != first
    [new, old] = executions(agent.stub, "watcher")
    assert (new.execution_id, old.execution_id) == (second, first)
    assert old.status == pb.SCRIPT_STATUS_INTERRUPTED and "the agent ended while it ran" in old.end_reason
    assert old.completed_at.ToDatetime() >= old.started_at.ToDatetime()
    wait_for_line(agent.stub, "watcher", "subscribed")
    probe_calls(targets["counter"], agent.stub)

    status = agent.stub.GetScriptStatus(pb.GetScriptStatusRequest(ref="oneshot"), timeout=30)
    assert status.status == pb.SCRIPT_STATUS_INTERRUPTED
    assert [(e.execution_id, e.status) for e in status.executions] == [(cut_short, pb.SCRIPT_STATUS_INTERRUPTED)]
    listed = agent.stub.ListScripts(pb.ListScriptsRequest(status=pb.SCRIPT_STATUS_INTERRUPTED), timeout=30)
    assert [s.id for s in listed.scripts] == [oneshot]
    listed = agent.stub.ListScripts(pb.ListScriptsRequest(status=pb.SCRIPT_STATUS_RUNNING), timeout=30)
    assert [s.id for s in listed.scripts] == [watcher]

    assert agent.terminate() == 0, "\n".join(agent.lines)
    assert emitted(coral) == {first: list(range(1, CALLS + 1)), second: list(range(1, CALLS + 1))}


def test_a_clean_restart_brings_the_daemon_script_back(agent_of, coral, targets):
    agent = agent_of()
    deploy(agent.stub, "watcher", WATCHER, pb.SCRIPT_MODE_DAEMON, binary=str(targets["counter"]))
    wait_for_line(agent.stub, "watcher", "subscribed")
    first = wait_running(agent.stub, "watcher")
    assert agent.terminate() == 0, "\n".join(agent.lines)

    agent = agent_of()
    second = wait_running(agent.stub, "watcher")
    [new, old] = executions(agent.stub, "watcher")
    assert (new.execution_id, old.execution_id) == (second, first)
    # Ended by the shutdown, which said so: not interrupted.
    assert old.status == pb.SCRIPT_STATUS_STOPPED and "agent shutdown" in old.end_reason
    wait_for_line(agent.stub, "watcher", "subscribed")
    probe_calls(targets["counter"], agent.stub)
    assert agent.terminate() == 0, "\n".join(agent.lines)
    assert emitted(coral) == {second: list(range(1, CALLS + 1))}


def test_a_script_started_as_another_ends_outlives_the_thread_that_asked(coral_home):
    """The queue starts the next script from the stopped one's supervisor
    thread, which ends right after: the script must not end with it (the
    kernel's parent-death signal follows the thread that started it)."""
    from coral_probe.agent.registry import ScriptRegistry
    from coral_probe.agent.runtime import AgentRuntime
    from coral_probe.store import Store

    store = Store(coral_home / "agent.duckdb")
    try:
        with AgentRuntime(store, echo=False) as runtime:
            registry = ScriptRegistry(store, runtime.executor, home=coral_home, max_running=1)
            # A listener after the registry's, at the first end only: the thread
            # that started the next script ends a second after it did.
            pauses = [1.0]
            runtime.executor.on_end.append(lambda run: time.sleep(pauses.pop()) if pauses else None)
            try:
                registry.deploy(name="first", code=IDLER)
                registry.deploy(name="next", code="for (let i = 1; i <= 10; i++) {\n  console.log(`tick ${i}`);\n"
                                                  "  await new Promise((r) => setTimeout(r, 300));\n}\n")
                assert registry.status("next").script.status == "pending"
                registry.stop("first")
                lines = [line for batch in registry.log_batches("next", follow=True) for _, _, line, _ in batch.rows]
                assert lines == [f"tick {i}" for i in range(1, 11)]
                [execution] = registry.status("next").executions
                assert (execution.status, execution.exit_code) == ("completed", 0)
            finally:
                registry.close()
    finally:
        store.close()


def test_a_scheduled_script_cut_by_a_kill_fires_again_after_the_restart(agent_of):
    agent = agent_of()
    agent.stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
        name="every2s", code=IDLER, mode=pb.SCRIPT_MODE_AD_HOC, timeout_seconds=3600,
        trigger=pb.ScriptTrigger(schedule=pb.ScheduleTrigger(cron="*/2 * * * * *")))), timeout=120)
    first = wait_running(agent.stub, "every2s")
    agent.channel.close()
    agent.proc.kill()
    agent.proc.wait(30)

    agent = agent_of()
    # Marked like any other; the script keeps its trigger, which starts it again.
    second = wait_running(agent.stub, "every2s")
    runs = executions(agent.stub, "every2s")
    assert [(e.execution_id, e.status) for e in runs] == [(second, pb.SCRIPT_STATUS_RUNNING),
                                                          (first, pb.SCRIPT_STATUS_INTERRUPTED)]
    script = agent.stub.GetScriptStatus(pb.GetScriptStatusRequest(ref="every2s"), timeout=30).script
    assert script.trigger.schedule.cron == "*/2 * * * * *"
    assert agent.terminate() == 0, "\n".join(agent.lines)
