"""`coral agent start` as its own process, driven over real gRPC on its Unix
socket: deployed scripts run in the real Deno sandbox with real uprobes, their
emits land in the agent's DuckDB, and a SIGTERM stops it cleanly."""

import json
import os
import subprocess
from pathlib import Path

import grpc
import pytest

from agents import Agent, released  # noqa: F401 - Agent is imported from here by other test files
from coral_probe.api import pb

pytestmark = pytest.mark.bpf

# Attaches, says so, emits one row per call, ends after `n` calls.
COUNTS_WORK = """
import * as coral from "@coral/sdk";

const { binary, n } = await coral.params();
const calls = coral.trace.uprobe("coral_work", { binary, args: 1 });
await calls.ready();
console.log("subscribed");
let seen = 0;
for await (const e of calls) {
  seen++;
  await coral.emit("agent_work", { i: e.args[0] });
  if (seen >= Number(n)) break;
}
console.log(`done after ${seen}`);
"""
# Attaches, then waits for events that never come (until stopped).
WAITS_ON_WORK = """
import * as coral from "@coral/sdk";

const { binary } = await coral.params();
const calls = coral.trace.uprobe("coral_work", { binary });
await calls.ready();
console.log("subscribed");
for await (const _ of calls) console.log("event");
console.log("stream ended");
"""
CALLS = 5


def deploy(stub, name: str, code: str, **params: str):
    return stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
        name=name, code=code, params=params, created_by="test_agent_service")), timeout=120)


def wait_for_line(stub, ref: str, wanted: str) -> None:
    """Follows the script's logs until `wanted`, then cancels the stream."""
    call = stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref=ref, follow=True), timeout=120)
    try:
        if any(entry.line == wanted for batch in call for entry in batch.entries):
            return
        pytest.fail(f"{ref}: its logs ended without {wanted!r}")
    finally:
        call.cancel()


def held_counter(counter: Path, calls: int) -> subprocess.Popen:
    proc = subprocess.Popen([str(counter), str(calls), "0"], env={**os.environ, "COUNTER_WAIT": "1"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_deployed_script_probes_emits_and_reports(agent_of, coral, targets):
    agent = agent_of()
    stub = agent.stub
    deployed = deploy(stub, "work", COUNTS_WORK, binary=str(targets["counter"]), n=str(CALLS))
    assert deployed.version == 1 and deployed.script_id
    counter = held_counter(targets["counter"], CALLS)
    try:
        wait_for_line(stub, "work", "subscribed")
        held = agent.bpf_held()
        assert held["prog"]  # its probe is in the kernel
        counter.stdin.write("go\n")
        counter.stdin.flush()
        assert counter.wait(timeout=60) == CALLS % 7
    finally:
        if counter.poll() is None:
            counter.kill()
    # Follows until the execution ends: every line, in order.
    lines = [e.line for batch in stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref="work", follow=True),
                                                        timeout=120) for e in batch.entries]
    assert lines == ["subscribed", f"done after {CALLS}"]
    status = stub.GetScriptStatus(pb.GetScriptStatusRequest(ref=deployed.script_id), timeout=30)
    assert status.status == pb.SCRIPT_STATUS_COMPLETED
    assert status.script.name == "work" and status.script.created_by == "test_agent_service"
    assert dict(status.script.params) == {"binary": str(targets["counter"]), "n": str(CALLS)}
    [execution] = status.executions
    assert execution.status == pb.SCRIPT_STATUS_COMPLETED
    assert execution.has_exit_code and execution.exit_code == 0
    # The end of its output and its emits come with it (seed 002's ScriptExecution).
    assert (execution.stdout, execution.stderr) == (f"subscribed\ndone after {CALLS}\n", "")
    assert sorted((e.name, json.loads(e.data)["i"]) for e in execution.events) == \
        [("agent_work", i) for i in range(1, CALLS + 1)]
    assert execution.started_at.ToDatetime() <= execution.completed_at.ToDatetime()
    logs = stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref="work", tail=1), timeout=30)
    assert [(e.stream, e.line) for batch in logs for e in batch.entries] == [("stdout", f"done after {CALLS}")]
    listed = stub.ListScripts(pb.ListScriptsRequest(status=pb.SCRIPT_STATUS_COMPLETED), timeout=30)
    assert [(s.id, s.version) for s in listed.scripts] == [(deployed.script_id, 1)]
    assert stub.ListScripts(pb.ListScriptsRequest(status=pb.SCRIPT_STATUS_RUNNING), timeout=30).scripts == []
    assert released(held) == {}

    assert agent.terminate() == 0
    assert "coral agent: stopped" in agent.lines
    rows = coral.query("SELECT script_id, execution_id, json_extract(data, '$.i')::INT FROM emitted_events"
                       " WHERE name = 'agent_work' ORDER BY 3")
    assert rows == [(deployed.script_id, execution.execution_id, i) for i in range(1, CALLS + 1)]


def test_bad_requests_get_their_codes_and_the_agent_keeps_serving(agent_of):
    agent = agent_of()
    stub = agent.stub
    code, details = code_of(lambda: deploy(stub, "typed", 'const x: string = 1;\nconsole.log(x);\n'))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "TS2322 [ERROR]: Type 'number' is not assignable to type 'string'" in details
    assert "\n" not in details
    code, details = code_of(lambda: deploy(stub, "bad name", "console.log(1);\n"))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid script name 'bad name'")
    code, details = code_of(lambda: stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
        name="cron", code="console.log(1);\n",
        trigger=pb.ScriptTrigger(schedule=pb.ScheduleTrigger(cron="*/1 * * * * * *")))), timeout=30))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid cron '*/1 * * * * * *'")
    for call in (lambda: stub.GetScriptStatus(pb.GetScriptStatusRequest(ref="nothing"), timeout=30),
                 lambda: stub.StopScript(pb.StopScriptRequest(script_id="nothing"), timeout=30),
                 lambda: stub.DeleteScript(pb.DeleteScriptRequest(ref="nothing"), timeout=30),
                 lambda: list(stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref="nothing"), timeout=30))):
        assert code_of(call) == (grpc.StatusCode.NOT_FOUND,
                                 "unknown script 'nothing': no deployed script has this id or name")
    assert stub.ListScripts(pb.ListScriptsRequest(), timeout=30).scripts == []
    assert agent.proc.poll() is None
    assert agent.terminate() == 0


def test_stop_detaches_the_waiting_scripts_probe(agent_of, targets):
    agent = agent_of()
    stub = agent.stub
    deployed = deploy(stub, "waiter", WAITS_ON_WORK, binary=str(targets["counter"]))
    wait_for_line(stub, "waiter", "subscribed")
    held = agent.bpf_held()
    assert held["prog"]  # its probe is in the kernel
    stopped = stub.StopScript(pb.StopScriptRequest(ref="waiter"), timeout=120)
    assert (stopped.success, stopped.script_id, stopped.status) == (True, deployed.script_id,
                                                                   pb.SCRIPT_STATUS_STOPPED)
    assert released(held) == {}
    status = stub.GetScriptStatus(pb.GetScriptStatusRequest(ref="waiter"), timeout=30)
    assert status.status == pb.SCRIPT_STATUS_STOPPED
    assert [e.status for e in status.executions] == [pb.SCRIPT_STATUS_STOPPED]
    lines = [e.line for batch in stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref="waiter"), timeout=30)
             for e in batch.entries]
    assert lines == ["subscribed", "stream ended"]
    deleted = stub.DeleteScript(pb.DeleteScriptRequest(ref="waiter"), timeout=30)
    assert list(deleted.script_ids) == [deployed.script_id]
    assert stub.ListScripts(pb.ListScriptsRequest(), timeout=30).scripts == []
    assert agent.terminate() == 0


def test_sigterm_stops_running_scripts_and_a_second_agent_is_refused(agent_of, coral, targets):
    agent = agent_of()
    deploy(agent.stub, "daemonish", WAITS_ON_WORK, binary=str(targets["counter"]))
    wait_for_line(agent.stub, "daemonish", "subscribed")
    held = agent.bpf_held()
    assert held["prog"]
    second = coral.run("agent", "start", timeout=60)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and "in use by another process" in second.stderr, second.stderr
    assert agent.proc.poll() is None
    assert agent.terminate() == 0, "\n".join(agent.lines)
    assert released(held) == {}
    assert agent.lines[-1] == "coral agent: stopped"
    assert not (coral.home / "agent.sock").exists()
    # The execution ended by the shutdown; the script keeps its status for a restart to find.
    [(status, reason, script_status)] = coral.query(
        "SELECT e.status, e.end_reason, s.status FROM script_executions e JOIN scripts s"
        " ON e.script_id = s.id WHERE s.name = 'daemonish'")
    assert (status, script_status) == ("stopped", "running") and "agent shutdown" in reason


# 1,000 lines of 16,000 bytes: 16 MB, under the 16 MiB an execution stores.
PRINTS_LONG_LINES = """
const enc = new TextEncoder();
const long = "x".repeat(16000);
for (let i = 0; i < 1000; i++) {
  const bytes = enc.encode(`${i} ${long}\\n`);
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}
"""
# 30,000 short lines at once: three times the burst of --log-lines-per-second 1000.
PRINTS_PAST_A_RAISED_RATE = """
const enc = new TextEncoder();
let text = "";
for (let i = 0; i < 30000; i++) text += `line ${i}\\n`;
const bytes = enc.encode(text);
for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
"""


def followed(stub, ref: str) -> list:
    return list(stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref=ref, follow=True, tail=10_000), timeout=300))


def test_log_batches_stay_under_grpcs_message_limit_and_the_line_rate_is_an_option(agent_of, coral):
    agent = agent_of("--log-lines-per-second", "1000")
    deploy(agent.stub, "long", PRINTS_LONG_LINES)
    batches = followed(agent.stub, "long")
    lines = [e.line for batch in batches for e in batch.entries]
    assert [int(line.split()[0]) for line in lines] == list(range(1000))  # 16 MB in messages of ~1 MiB
    assert all(batch.ByteSize() < 2 << 20 for batch in batches) and len(batches) >= 16
    deploy(agent.stub, "loud", PRINTS_PAST_A_RAISED_RATE)
    entries = [e for batch in followed(agent.stub, "loud") for e in batch.entries]
    received, lost = sum(1 for e in entries if e.stream), sum(e.lost for e in entries)
    assert received + lost == 30_000 and 10_000 <= received < 30_000  # the burst is 10 s of the rate
    execution_id = entries[0].execution_id
    assert agent.terminate() == 0
    assert coral.query("SELECT log_lines_dropped FROM script_executions WHERE execution_id = ?",
                       [execution_id]) == [(lost,)]
