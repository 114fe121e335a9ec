"""The script registry (what the AgentService's RPCs call) on a real agent:
real Deno checks and runs, real DuckDB."""

import json
import threading
import time

import pytest

from coral_probe.agent.registry import InvalidScript, ScriptNotFound, ScriptRegistry
from coral_probe.agent.runtime import AgentRuntime
from coral_probe.agent.subscriptions import AgentTarget
from coral_probe.errors import CoralError
from coral_probe.store import Store
from test_detach import coral_programs

pytestmark = pytest.mark.bpf

EMITS_AND_ENDS = """
import { emit } from "@coral/sdk";
console.log("hello from the registry");
await emit("registry_hello", { n: 7 });
console.log("bye");
"""
# Waits until stopped (a stop ends it after the grace period).
WAITS = "await new Promise((resolve) => setTimeout(resolve, 3_600_000));\n"


@pytest.fixture
def agent(coral_home):
    store = Store(coral_home / "agent.duckdb")
    try:
        with AgentRuntime(store, echo=False) as runtime:
            runtime.executor.grace_s = 0.5  # waiting scripts ignore the end of streams
            registry = ScriptRegistry(store, runtime.executor, home=coral_home)
            try:
                yield runtime, registry
            finally:
                registry.close()
    finally:
        store.close()


def wait_until(predicate, what: str, timeout: float = 120.0, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll)


def log_lines(registry, ref, **kwargs) -> list[str]:
    return [line for batch in registry.log_batches(ref, **kwargs) for _, _, line, _ in batch.rows]


def wait_ended(registry, ref):
    log_lines(registry, ref, tail=0, follow=True)
    return registry.status(ref)


def deploy(registry, name, code=EMITS_AND_ENDS, daemon=False):
    return registry.deploy(name=name, code=code, params={}, daemon=daemon, timeout_s=None, created_by="t")


def hook_start(executor, before_start):
    """`before_start(script_id)` runs inside the executor's next start, before
    it does anything (as a start's `deno info` would take its time)."""
    start = executor.start

    def hooked(script, **kwargs):
        del executor.start  # once
        before_start(script.parent.parent.name)
        return start(script, **kwargs)
    executor.start = hooked


def test_deploy_runs_and_records_emits_status_and_logs(agent, coral_home):
    runtime, registry = agent
    deployed = registry.deploy(name="hello", code=EMITS_AND_ENDS, params={"k": "v"}, daemon=False,
                               timeout_s=None, created_by="test")
    assert deployed.version == 1
    assert (coral_home / "scripts" / deployed.script_id / "1" / "main.ts").read_text() == EMITS_AND_ENDS
    lines = log_lines(registry, "hello", tail=100, follow=True)
    assert lines == ["hello from the registry", "bye"]
    status = registry.status("hello")
    assert status.script.status == "completed" and status.script.created_by == "test"
    assert status.script.params == {"k": "v"} and status.script.mode == "ad-hoc" and status.script.timeout_s == 60
    [execution] = status.executions
    assert (execution.status, execution.exit_code) == ("completed", 0)
    assert status.script.last_execution == execution
    with runtime.store.cursor() as cur:
        rows = cur.execute("SELECT data, script_id, execution_id FROM emitted_events"
                           " WHERE name = 'registry_hello'").fetchall()
    assert [(json.loads(d), s, e) for d, s, e in rows] == [({"n": 7}, deployed.script_id, execution.execution_id)]
    assert [r.name for r in registry.list()] == ["hello"]
    assert [r.id for r in registry.list("completed")] == [deployed.script_id]


def test_type_error_is_refused_with_the_checkers_first_line_and_nothing_stored(agent, coral_home):
    runtime, registry = agent
    with pytest.raises(InvalidScript, match=r"TS2322 \[ERROR\]: Type 'number' is not assignable to type 'string'"):
        registry.deploy(name="bad", code='const x: string = 1;\nconsole.log(x);\n', params={}, daemon=False,
                        timeout_s=None, created_by="test")
    with runtime.store.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM scripts").fetchone()[0] == 0
    assert registry.list() == []
    assert not any((coral_home / "scripts").glob("[!.]*"))
    with pytest.raises(ScriptNotFound, match="unknown script 'bad'"):
        registry.status("bad")


@pytest.mark.parametrize("code, message", [
    ('import { x } from "https://deno.land/x/foo/mod.ts";\nconsole.log(x);\n', "remote or npm module"),
    ('import chalk from "npm:chalk";\nconsole.log(chalk);\n', "remote or npm module"),
    ('import { x } from "./other.ts";\nconsole.log(x);\n', "does not exist"),
])
def test_imports_beyond_the_sdk_are_refused(agent, code, message):
    _, registry = agent
    with pytest.raises(InvalidScript, match=message):
        registry.deploy(name="imports", code=code, params={}, daemon=False, timeout_s=None, created_by="test")
    assert registry.list("all") == []


def test_bad_names_sizes_and_timeouts_are_refused(agent):
    _, registry = agent
    for kwargs, message in [({"name": "a b"}, "invalid script name"), ({"name": "x" * 65}, "invalid script name"),
                            ({"code": "//" + "x" * (1 << 20)}, "over the 1 MiB limit"),
                            ({"timeout_s": -1}, "must be above 0"),
                            ({"daemon": True, "timeout_s": 86401}, r"at most 86400 \(24h\)")]:
        args = {"name": "ok", "code": WAITS, "params": {}, "daemon": False, "timeout_s": None,
                "created_by": "test", **kwargs}
        with pytest.raises(InvalidScript, match=message):
            registry.deploy(**args)
    assert registry.list("all") == []


def test_redeploy_makes_version_two_and_stops_the_first(agent):
    runtime, registry = agent
    first = registry.deploy(name="svc", code=WAITS, params={}, daemon=True, timeout_s=None, created_by="test")
    second = registry.deploy(name="svc", code=WAITS + "// v2\n", params={}, daemon=True, timeout_s=None,
                             created_by="test")
    assert (first.version, second.version) == (1, 2)
    old = registry.status(first.script_id)
    assert old.script.status == "stopped"
    assert [e.status for e in old.executions] == ["stopped"]
    assert "replaced by version 2" in old.executions[0].end_reason
    new = registry.status("svc")
    assert new.script.id == second.script_id and new.script.status == "running"
    assert new.script.mode == "daemon" and new.script.timeout_s == 86400
    assert [(r.name, r.version) for r in registry.list()] == [("svc", 2)]
    registry.stop("svc")
    assert registry.status("svc").script.status == "stopped"
    assert runtime.executor.running() == 0


def test_more_than_five_wait_pending_and_start_in_order(agent):
    runtime, registry = agent
    deployed = [registry.deploy(name=f"w{i}", code=WAITS, params={}, daemon=True, timeout_s=None, created_by="t")
                for i in range(6)]
    statuses = {r.name: r.status for r in registry.list()}
    assert statuses == {**{f"w{i}": "running" for i in range(5)}, "w5": "pending"}
    assert registry.status("w5").executions == []
    assert runtime.executor.running() == 5
    registry.stop("w2")
    statuses = {r.name: r.status for r in registry.list()}
    assert statuses == {**{f"w{i}": "running" for i in (0, 1, 3, 4, 5)}, "w2": "stopped"}
    assert registry.status(deployed[5].script_id).script.status == "running"
    for i in (0, 1, 3, 4, 5):
        registry.stop(f"w{i}")
    assert runtime.executor.running() == 0
    assert coral_programs() == []


def test_stop_and_delete_by_name(agent):
    runtime, registry = agent
    deployed = registry.deploy(name="gone", code=WAITS, params={}, daemon=True, timeout_s=None, created_by="t")
    registry.deploy(name="kept", code=EMITS_AND_ENDS, params={}, daemon=False, timeout_s=None, created_by="t")
    wait_ended(registry, "kept")
    record = registry.stop("gone")
    assert record.status == "stopped" and record.last_execution.status == "stopped"
    registry.delete("gone")
    assert [r.name for r in registry.list()] == ["kept"]
    assert [r.id for r in registry.list("deleted")] == [deployed.script_id]
    assert registry.status(deployed.script_id).script.status == "deleted"  # history is kept
    with pytest.raises(ScriptNotFound):
        registry.stop("gone")
    with pytest.raises(ScriptNotFound):
        registry.delete("nothing-here")
    # Deleting a running script stops it.
    registry.deploy(name="busy", code=WAITS, params={}, daemon=True, timeout_s=None, created_by="t")
    registry.delete("busy")
    assert runtime.executor.running() == 0
    assert [r.name for r in registry.list()] == ["kept"]


def test_a_start_holds_no_lock_and_a_stop_during_it_stops_the_fresh_run(agent):
    runtime, registry = agent
    other = deploy(registry, "other", WAITS, daemon=True)
    stoppers: list[threading.Thread] = []

    def meanwhile(script_id):
        # Another script's stop is not held up by this start...
        elsewhere = threading.Thread(target=registry.stop, args=(other.script_id,))
        elsewhere.start()
        elsewhere.join(60)
        assert not elsewhere.is_alive(), "the stop of another script waited for this start"
        # ...and this script's own stop is taken at once, its run stopped as soon as it started.
        stoppers.append(threading.Thread(target=registry.stop, args=(script_id,)))
        stoppers[0].start()
        wait_until(lambda: registry.status(script_id).script.status == "stopped", "the stop during the start")

    hook_start(runtime.executor, meanwhile)
    starting = deploy(registry, "starting", WAITS, daemon=True)
    stoppers[0].join(60)
    assert not stoppers[0].is_alive()
    assert registry.status(other.script_id).script.status == "stopped"
    status = registry.status(starting.script_id)
    assert status.script.status == "stopped"  # what the operator asked, not running
    [execution] = status.executions
    assert execution.status == "stopped" and "stopped by request" in execution.end_reason
    assert runtime.executor.running() == 0


def test_a_start_that_finds_the_last_slot_taken_is_queued_first_not_failed(agent):
    runtime, registry = agent
    runtime.executor.max_concurrent = 1
    taken = []

    def coral_run_takes_the_slot(_script_id):
        # A `coral run` through the agent, between the registry's look at the room and its start.
        source = registry.scripts_dir.parent / "adhoc.ts"
        source.write_text(WAITS)
        taken.append(runtime.executor.start(source, target=AgentTarget(), timeout_s=600))

    hook_start(runtime.executor, coral_run_takes_the_slot)
    deployed = deploy(registry, "queued")
    status = registry.status("queued")
    assert (status.script.status, status.executions) == ("pending", [])
    runtime.executor.stop(taken[0], "done")  # its end starts the queued script
    assert log_lines(registry, "queued", follow=True) == ["hello from the registry", "bye"]
    [execution] = registry.status(deployed.script_id).executions
    assert (registry.status("queued").script.status, execution.status) == ("completed", "completed")


def test_a_deploy_checked_while_the_agent_stops_is_refused_and_not_stored(agent, coral_home):
    runtime, registry = agent
    validate = registry._validate

    def agent_stops_as_deno_checks(staging, data):
        validate(staging, data)
        registry.close()
    registry._validate = agent_stops_as_deno_checks
    with pytest.raises(CoralError) as info:
        deploy(registry, "late")
    assert str(info.value) == "the agent is stopping; no deployments now"
    with runtime.store.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM scripts").fetchone()[0] == 0
    assert not any((coral_home / "scripts").glob("[!.]*"))
