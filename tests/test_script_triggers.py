"""Schedule and event triggers of deployed scripts on a real agent: real Deno
runs, real DuckDB rows, the registry's trigger thread in-process, and a real
`coral agent start` over gRPC and through `coral script deploy`."""

import json
import socket
import threading
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from coral_probe.agent.registry import InvalidScript, ScriptRegistry
from coral_probe.agent.triggers import EVENT, SCHEDULE, Trigger
from coral_probe.api import pb
from test_agent_service import code_of
from test_script_registry import WAITS, agent, log_lines, wait_until  # noqa: F401 (fixture)

pytestmark = pytest.mark.bpf

# One short run: a line and an emit with its execution, then exit.
TICKS = """
import * as coral from "@coral/sdk";
console.log("tick");
await coral.emit("tick", {});
"""
# Sets the flag an event condition watches: an emit whose `on` is the param.
SETS_FLAG = """
import * as coral from "@coral/sdk";
const { on } = await coral.params();
await coral.emit("flag", { on: on === "true" });
"""
# True while the newest flag is on.
FLAG_IS_ON = ("SELECT 1 FROM (SELECT data FROM emitted_events WHERE name = 'flag' ORDER BY timestamp DESC LIMIT 1)"
              " WHERE json_extract_string(data, '$.on') = 'true'")
EVERY_2S = "*/2 * * * * *"  # seconds first
# Runs until the test writes a `coral_test_release` metric (a row every script may read).
HOLDS = """
import * as coral from "@coral/sdk";
console.log("holding");
for (;;) {
  const { rows } = await coral.db.query(
    "SELECT count(*) AS n FROM system_metrics_local WHERE name = 'coral_test_release'");
  if (Number(rows[0].n) > 0) break;
  await new Promise((resolve) => setTimeout(resolve, 200));
}
console.log("released");
"""
# True while the newest `coral_test_flag` metric is 1 (the test writes them to the store).
METRIC_IS_ON = ("SELECT 1 FROM (SELECT value FROM system_metrics_local WHERE name = 'coral_test_flag'"
                " ORDER BY timestamp DESC LIMIT 1) WHERE value = 1")
# Its constant parts take far longer than the 10s a condition may take to bind.
SLOW_TO_BIND = "SELECT 1 WHERE abs(levenshtein(repeat('a', 130000), repeat('b', 130000))) < 0"


def executions(store, script_id: str) -> list[tuple[str, str, int | None]]:
    """(execution id, status, exit code) of its executions in script_executions, oldest first."""
    with store.cursor() as cur:
        return cur.execute("SELECT execution_id, status, exit_code FROM script_executions WHERE script_id = ?"
                           " ORDER BY started_at", [script_id]).fetchall()


def deploy(registry, name: str, code: str, trigger: Trigger | None = None, **params: str):
    return registry.deploy(name=name, code=code, params=params, daemon=False, timeout_s=None,
                           created_by="test_script_triggers", trigger=trigger)


def test_a_seconds_cron_fires_again_and_again_until_stopped(agent):  # noqa: F811
    runtime, registry = agent
    deployed = deploy(registry, "tick", TICKS, Trigger(SCHEDULE, cron=EVERY_2S))
    assert registry.status("tick").script.trigger == Trigger(SCHEDULE, cron=EVERY_2S)
    done = wait_until(lambda: [e for e in executions(runtime.store, deployed.script_id) if e[1] == "completed"][1:],
                      "two completed runs of the cron script")
    assert all(code == 0 for _, _, code in done)
    # Between its runs it waits for the next fire.
    wait_until(lambda: registry.status("tick").script.status == "pending", "the script pending between runs")
    with runtime.store.cursor() as cur:
        emitted = {e for (e,) in cur.execute("SELECT execution_id FROM emitted_events WHERE name = 'tick'"
                                             " AND script_id = ?", [deployed.script_id]).fetchall()}
    assert {e for e, _, _ in done} <= emitted  # each fire a new execution of the same version

    assert registry.stop("tick").status == "stopped"
    assert not registry.triggers.is_armed(deployed.script_id)
    count = len(executions(runtime.store, deployed.script_id))
    # Two more of its cron periods, seen by the trigger thread itself: a witness's
    # check due after them has been made (the thread takes turns in time order).
    witness = deploy(registry, "witness", TICKS, Trigger(EVENT, condition="SELECT 1 WHERE false", check_interval_s=1))
    after = datetime.now(timezone.utc) + timedelta(seconds=4)
    wait_until(lambda: registry.triggers.next_due(witness.script_id) > after + timedelta(seconds=1),
               "the trigger thread past two more cron periods")
    assert len(executions(runtime.store, deployed.script_id)) == count  # a stopped script is not fired
    assert registry.status("tick").script.status == "stopped"
    assert runtime.executor.running() == 0


def test_a_five_field_cron_waits_for_its_time_and_is_armed_again_at_start(agent):  # noqa: F811
    runtime, registry = agent
    before = datetime.now(timezone.utc)
    nightly = deploy(registry, "every5m", TICKS, Trigger(SCHEDULE, cron="*/5 * * * *"))
    armed = datetime.now(timezone.utc)  # after the deploy's checks, which may cross a 5-minute mark
    watcher = deploy(registry, "watcher", TICKS, Trigger(EVENT, condition="SELECT 1 WHERE false", check_interval_s=2))
    stopped = deploy(registry, "stopped", TICKS, Trigger(SCHEDULE, cron="0 3 * * *"))
    registry.stop("stopped")
    due = registry.triggers.next_due(nightly.script_id)
    assert (due.minute % 5, due.second, due.microsecond) == (0, 0, 0)
    assert before < due <= armed + timedelta(minutes=5)
    assert registry.status("every5m").script.status == "pending"
    assert executions(runtime.store, nightly.script_id) == []
    listed = {r.name: r.trigger for r in registry.list()}
    assert listed == {"every5m": Trigger(SCHEDULE, cron="*/5 * * * *"), "stopped": Trigger(SCHEDULE, cron="0 3 * * *"),
                      "watcher": Trigger(EVENT, condition="SELECT 1 WHERE false", check_interval_s=2.0)}

    # A registry starting on this database (an agent restart) arms them again, not the stopped one;
    # one whose run the last agent left `running` waits as pending.
    registry.close()
    with runtime.store._writing() as cur:
        cur.execute("UPDATE scripts SET status = 'running' WHERE id = ?", [nightly.script_id])
    again = ScriptRegistry(runtime.store, runtime.executor, home=registry.scripts_dir.parent)
    try:
        assert again.status("every5m").script.status == "pending"
        assert again.triggers.next_due(nightly.script_id) in (due, due + timedelta(minutes=5))
        assert again.triggers.is_armed(watcher.script_id)
        assert not again.triggers.is_armed(stopped.script_id)
        wait_until(lambda: again.triggers.checks[watcher.script_id] >= 1, "the re-armed condition checked")
        again.delete("every5m")
        assert not again.triggers.is_armed(nightly.script_id)
    finally:
        again.close()
    assert executions(runtime.store, watcher.script_id) == []


def test_an_event_trigger_fires_once_per_false_to_true_change(agent):  # noqa: F811
    runtime, registry = agent
    checks = registry.triggers.checks
    watcher = deploy(registry, "on-flag", TICKS, Trigger(EVENT, condition=FLAG_IS_ON, check_interval_s=1))

    def runs() -> int:
        return len(executions(runtime.store, watcher.script_id))

    def checked_after_now(more: int = 2) -> None:
        # The check under way may have started before the last write: the one after it has not.
        wanted = checks[watcher.script_id] + more
        wait_until(lambda: checks[watcher.script_id] >= wanted, f"{more} more checks of the condition")

    def set_flag(on: bool) -> None:
        deployed = deploy(registry, "flag", SETS_FLAG, on=str(on).lower())
        wait_until(lambda: registry.status(deployed.script_id).script.status == "completed", "the flag set")

    checked_after_now()
    assert runs() == 0  # no flag yet: false
    set_flag(True)
    wait_until(lambda: runs() == 1, "the first fire")
    checked_after_now(3)
    assert runs() == 1  # still true: not again
    set_flag(False)
    checked_after_now()
    assert runs() == 1
    set_flag(True)
    wait_until(lambda: runs() == 2, "the second fire")
    checked_after_now(3)
    wait_until(lambda: registry.status("on-flag").script.status == "pending", "the second run ended")
    assert [(status, code) for _, status, code in executions(runtime.store, watcher.script_id)] == \
        [("completed", 0), ("completed", 0)]
    assert registry.fires_skipped[watcher.script_id] == 0
    registry.delete("on-flag")
    assert not registry.triggers.is_armed(watcher.script_id)


def test_a_fire_while_its_run_is_still_going_starts_no_second_copy(agent, capsys):  # noqa: F811
    runtime, registry = agent
    slow = deploy(registry, "slow", WAITS, Trigger(SCHEDULE, cron="* * * * * *"))
    wait_until(lambda: registry.fires_skipped[slow.script_id] >= 2, "two fires during the first run")
    [(_, status, _)] = executions(runtime.store, slow.script_id)
    assert status == "running" and runtime.executor.running() == 1
    assert registry.status("slow").script.status == "running"
    assert f"coral: trigger of deployed script {slow.script_id} fired while its last run is still going: " \
           "not started again" in capsys.readouterr().err
    registry.stop("slow")
    assert runtime.executor.running() == 0
    assert [s for _, s, _ in executions(runtime.store, slow.script_id)] == ["stopped"]


def test_a_rising_edge_during_the_last_run_fires_once_that_run_ended(agent):  # noqa: F811
    runtime, registry = agent
    checks = registry.triggers.checks

    def flag(value: float) -> None:
        runtime.store.record_system_metrics([("coral_test_flag", value, "")])
        wanted = checks[watcher.script_id] + 2  # the check under way may have read before this write
        wait_until(lambda: checks[watcher.script_id] >= wanted, "two more checks of the condition")

    watcher = deploy(registry, "holder", HOLDS, Trigger(EVENT, condition=METRIC_IS_ON, check_interval_s=1))
    flag(1)
    wait_until(lambda: registry.status("holder").script.status == "running", "the first fire")
    flag(0)
    runtime.store.record_system_metrics([("coral_test_flag", 1, "")])  # rises again while the first run holds
    wait_until(lambda: registry.fires_skipped[watcher.script_id] >= 1, "the fire skipped during the run")
    assert len(executions(runtime.store, watcher.script_id)) == 1  # never a second copy
    runtime.store.record_system_metrics([("coral_test_release", 1, "")])
    done = wait_until(lambda: [e for e in executions(runtime.store, watcher.script_id) if e[1] == "completed"][1:],
                      "the pending rising edge fired once the first run ended")
    assert [code for _, _, code in done] == [0]
    wait_until(lambda: registry.status("holder").script.status == "pending", "the second run ended")
    flag(1)  # still on: no third fire
    assert [status for _, status, _ in executions(runtime.store, watcher.script_id)] == ["completed", "completed"]


def test_logs_follow_of_an_armed_script_waits_for_its_first_fire(agent):  # noqa: F811
    runtime, registry = agent
    watcher = deploy(registry, "later", TICKS, Trigger(EVENT, condition=METRIC_IS_ON, check_interval_s=1))
    lines: list[str] = []
    follower = threading.Thread(target=lambda: lines.extend(log_lines(registry, "later", follow=True)))
    follower.start()
    wanted = registry.triggers.checks[watcher.script_id] + 2
    wait_until(lambda: registry.triggers.checks[watcher.script_id] >= wanted, "two checks before any fire")
    assert follower.is_alive() and lines == []  # waiting, not returned empty
    runtime.store.record_system_metrics([("coral_test_flag", 1, "")])
    follower.join(120)
    assert not follower.is_alive() and lines == ["tick"]
    [(_, status, code)] = executions(runtime.store, watcher.script_id)
    assert (status, code) == ("completed", 0)


@pytest.mark.parametrize("trigger, message", [
    (Trigger(SCHEDULE, cron="61 * * * *"), "invalid cron '61 * * * *': "),
    (Trigger(SCHEDULE, cron="every minute"), "invalid cron 'every minute': 5 fields"),
    (Trigger(EVENT, condition="DELETE FROM scripts"), "invalid condition: it must be one read-only SELECT statement"),
    (Trigger(EVENT, condition="SELECT * FROM duckdb_tables()"), "invalid condition: a trigger condition may not read"),
    (Trigger(EVENT, condition="SELECT nope FROM emitted_events"), "invalid condition: Binder Error"),
    (Trigger(EVENT, condition="SELECT 1", check_interval_s=0.5), "invalid check interval 0.5s"),
    (Trigger(EVENT, condition=SLOW_TO_BIND), "invalid condition: binding it took over 10s"),
])
def test_bad_triggers_are_refused_before_anything_is_stored(agent, trigger, message):  # noqa: F811
    _, registry = agent
    with pytest.raises(InvalidScript) as info:
        deploy(registry, "bad", TICKS, trigger)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert registry.list("all") == []


def test_triggers_over_grpc_and_the_cli(agent_of, coral, tmp_path):
    running = agent_of()
    stub = running.stub

    def deploy_rpc(trigger):
        return stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
            name="bad", code=TICKS, trigger=trigger, created_by="test")), timeout=120)

    for trigger, message in [
        (pb.ScriptTrigger(schedule=pb.ScheduleTrigger(cron="61 * * * *")), "invalid cron '61 * * * *': "),
        (pb.ScriptTrigger(event=pb.EventTrigger(condition="DROP TABLE scripts", check_interval_seconds=5)),
         "invalid condition: it must be one read-only SELECT statement"),
        (pb.ScriptTrigger(event=pb.EventTrigger(condition="SELECT * FROM read_csv('/etc/passwd')")),
         "invalid condition: a trigger condition may not read table function read_csv()"),
    ]:
        code, details = code_of(lambda: deploy_rpc(trigger))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith(message), details
        assert "\n" not in details
    source = tmp_path / "tick.ts"
    source.write_text(TICKS)
    for args, message in [(["--cron", "0 0 30 2 *"], "invalid cron '0 0 30 2 *': "),
                          (["--when", "UPDATE scripts SET status = 'x'"], "invalid condition: it must be one")]:
        refused = coral.run("script", "deploy", "--name", "bad", "--file", str(source), *args)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.count("\n") == 1 and message in refused.stderr, refused.stderr
    assert stub.ListScripts(pb.ListScriptsRequest(), timeout=30).scripts == []

    first = coral.run("script", "deploy", "--name", "tick", "--file", str(source), "--cron", EVERY_2S, "--json")
    assert first.returncode == 0, first.stderr
    reply = json.loads(first.stdout)
    assert reply["version"] == 1 and reply["deployed_to"] == [socket.gethostname()]
    assert reply["replaced_script_id"] is None and reply["status"] in ("pending", "running")

    def completed() -> list:
        status = stub.GetScriptStatus(pb.GetScriptStatusRequest(ref=reply["script_id"], tail=100), timeout=30)
        return [e for e in status.executions if e.status == pb.SCRIPT_STATUS_COMPLETED][1:]
    assert all(e.has_exit_code and e.exit_code == 0 for e in wait_until(completed, "two fires over gRPC"))
    listed = coral.run("script", "list")
    assert listed.returncode == 0 and f"cron {EVERY_2S}" in listed.stdout, listed.stdout + listed.stderr
    status = coral.run("script", "status", "tick")
    assert f"Trigger: cron {EVERY_2S}" in status.stdout, status.stdout + status.stderr

    second = coral.run("script", "deploy", "--name", "tick", "--file", str(source),
                       "--when", "SELECT 1 WHERE false", "--every", "2s", "--json")
    assert second.returncode == 0, second.stderr
    replaced = json.loads(second.stdout)
    assert (replaced["version"], replaced["replaced_script_id"], replaced["status"]) == \
        (2, reply["script_id"], "pending")
    every = stub.ListScripts(pb.ListScriptsRequest(all_versions=True), timeout=30).scripts
    assert [(s.version, s.status) for s in every] == [(1, pb.SCRIPT_STATUS_STOPPED), (2, pb.SCRIPT_STATUS_PENDING)]
    [newest] = stub.ListScripts(pb.ListScriptsRequest(), timeout=30).scripts
    assert newest.version == 2 and newest.trigger.WhichOneof("trigger") == "event"
    assert (newest.trigger.event.condition, newest.trigger.event.check_interval_seconds) == ("SELECT 1 WHERE false", 2)
    assert [s.trigger.schedule.cron for s in every[:1]] == [EVERY_2S]
    stopped = coral.run("script", "stop", "tick")
    assert stopped.returncode == 0, stopped.stderr
    assert running.proc.poll() is None  # still serving
    assert running.terminate() == 0, "\n".join(running.lines)
