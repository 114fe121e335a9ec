"""The whole path an operator takes, each step through the real `coral`
command: `coral agent start` on a private CORAL_HOME, `coral script deploy`
of a script that puts a uprobe on a real target, its emits in DuckDB linked to
its execution, `coral script status/logs/stop`, nothing of coral left in the
kernel, SIGTERM → exit 0 and the socket gone."""

import json
import os
import time

import pytest

from coral_probe.api import pb
from agents import released
from test_agent_service import held_counter
from test_detach import uprobe_events

pytestmark = pytest.mark.bpf

CALLS = 5
# A daemon: one emit and one line per call of coral_work, until stopped.
PER_CALL = """
import * as coral from "@coral/sdk";

const { binary } = await coral.params();
const calls = coral.trace.uprobe("coral_work", { binary, args: 1 });
await calls.ready();
console.log("subscribed");
let seen = 0;
for await (const e of calls) {
  seen++;
  await coral.emit("e2e_call", { i: e.args[0] });
  console.log(`call ${e.args[0]}`);
}
console.log(`stream ended after ${seen}`);
"""


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for_logs(coral, ref: str, last: str) -> list[str]:
    """`coral script logs` until its last line is `last` (bounded, never timed)."""
    deadline = time.monotonic() + 90
    while True:
        lines = ok(coral.run("script", "logs", ref, timeout=60)).splitlines()
        if lines and lines[-1] == last:
            return lines
        assert time.monotonic() < deadline, f"{ref}: its logs never ended with {last!r}: {lines}"
        time.sleep(0.2)


def test_deploy_probe_emit_status_logs_stop_and_shutdown(agent_of, coral, targets, tmp_path):
    agent = agent_of()
    script = tmp_path / "per_call.ts"
    script.write_text(PER_CALL)
    deployed = json.loads(ok(coral.run("script", "deploy", "--name", "e2e", "--file", str(script), "--daemon",
                                       "--param", f"binary={targets['counter']}", "--created-by", "e2e", "--json")))
    assert (deployed["name"], deployed["version"]) == ("e2e", 1)
    script_id = deployed["script_id"]

    counter = held_counter(targets["counter"], CALLS)
    try:
        wait_for_logs(coral, "e2e", "subscribed")
        held = agent.bpf_held()
        assert held["prog"] and held["link"]  # its probe is in the kernel
        counter.stdin.write("go\n")
        counter.stdin.flush()
        assert counter.wait(timeout=60) == CALLS % 7
    finally:
        if counter.poll() is None:
            counter.kill()
    calls = [f"call {i}" for i in range(1, CALLS + 1)]
    assert wait_for_logs(coral, script_id, calls[-1]) == ["subscribed", *calls]

    status = json.loads(ok(coral.run("script", "status", "e2e", "--json")))
    assert (status["script_id"], status["status"]) == (script_id, "running")
    assert status["script"]["created_by"] == "e2e" and status["script"]["mode"] == "daemon"
    [execution] = status["executions"]
    assert (execution["status"], execution["exit_code"]) == ("running", None)
    execution_id = execution["execution_id"]
    table = ok(coral.run("script", "status", "e2e"))
    assert "Status: RUNNING" in table and execution_id in table
    one = ok(coral.run("script", "logs", "e2e", "--execution", execution_id, "--tail", "2")).splitlines()
    assert one == calls[-2:]

    stopped = ok(coral.run("script", "stop", "e2e"))
    assert "Status: STOPPED" in stopped and script_id in stopped
    assert released(held) == {}
    assert os.path.realpath(targets["counter"]) not in uprobe_events()
    status = json.loads(ok(coral.run("script", "status", script_id, "--json")))
    assert status["status"] == "stopped"
    assert [(e["execution_id"], e["status"]) for e in status["executions"]] == [(execution_id, "stopped")]
    assert ok(coral.run("script", "logs", "e2e")).splitlines() == ["subscribed", *calls,
                                                                  f"stream ended after {CALLS}"]
    [listed] = [json.loads(line) for line in ok(coral.run("script", "list", "--json")).splitlines()]
    assert (listed["id"], listed["status"]) == (script_id, "stopped")

    assert agent.terminate() == 0, "\n".join(agent.lines)
    assert agent.lines[-1] == "coral agent: stopped"
    assert not (coral.home / "agent.sock").exists()
    # The agent is gone: its DuckDB file is free to read.
    rows = coral.query("SELECT script_id, execution_id, json_extract(data, '$.i')::INT FROM emitted_events"
                       " WHERE name = 'e2e_call' ORDER BY 3")
    assert rows == [(script_id, execution_id, i) for i in range(1, CALLS + 1)]


# Past the log line rate twice (3,000 lines at once, over the burst), with a
# quiet second between: lines are dropped mid-output and at the end.
PRINTS_PAST_THE_RATE = """
const enc = new TextEncoder();
let n = 0;
function burst(count: number): void {
  let text = "";
  for (let i = 0; i < count; i++) text += `line ${n++}\\n`;
  const bytes = enc.encode(text);
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}
burst(3000);
await new Promise((resolve) => setTimeout(resolve, 1000));
burst(1);
await new Promise((resolve) => setTimeout(resolve, 1000));
burst(3000);
"""
PRINTED = 6001


def test_a_slow_follower_gets_every_stored_line_and_each_drop_is_counted_where_it_happened(
        agent_of, coral, tmp_path):  # noqa: F811
    agent = agent_of()
    agent.stub.DeployScript(pb.DeployScriptRequest(script=pb.Script(
        name="loud", code=PRINTS_PAST_THE_RATE)), timeout=300)
    entries = []
    for batch in agent.stub.StreamScriptLogs(pb.StreamScriptLogsRequest(ref="loud", follow=True, tail=10_000),
                                             timeout=300):
        entries.extend(batch.entries)
        time.sleep(0.2)  # a slow reader: the agent's side waits, nothing is dropped for it
    execution_id = entries[0].execution_id
    assert {e.execution_id for e in entries} == {execution_id}
    # Each line's `lost` is exactly the gap before it; the last, empty entry counts the gap at the end.
    *lines, end = entries
    numbers = [int(e.line.split()[1]) for e in lines]
    assert numbers == sorted(numbers) and numbers[0] == 0
    assert [e.lost for e in lines] == [n - prev - 1 for prev, n in zip([-1, *numbers], numbers)]
    assert (end.stream, end.line, end.lost) == ("", "", PRINTED - 1 - numbers[-1])
    assert any(e.lost for e in lines)  # the quiet second's line tells of the first burst's drops
    lost = sum(e.lost for e in entries)
    assert len(lines) + lost == PRINTED
    # The CLI says so on stderr, its lines on stdout.
    shown = coral.run("script", "logs", "loud", "--tail", "10000", timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [e.line for e in lines]
    assert sum(int(x.split()[1]) for x in shown.stderr.splitlines()) == lost

    assert agent.terminate() == 0
    assert coral.query("SELECT log_lines_dropped FROM script_executions WHERE execution_id = ?",
                       [execution_id]) == [(lost,)]
    assert coral.query("SELECT line FROM script_logs WHERE execution_id = ? ORDER BY rowid",
                       [execution_id]) == [(e.line,) for e in lines]
