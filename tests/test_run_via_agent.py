"""`coral run` while `coral agent start` holds $CORAL_HOME's store: the
script runs in the agent (AgentService.RunScript over its real socket, the
real Deno sandbox, real uprobes), the client prints what a local run prints
and exits as it would, the run is recorded in the agent's DuckDB, and a
SIGTERM to the client stops the run in the agent. Over TCP a client names
only the targets the agent's --allow-probe rules allow; a client's strings
cannot forge a line of the agent's log."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from coral_probe.api import client, pb
from test_agent_bad_input import tcp_port
from agents import released
from test_agent_service import Agent, held_counter
from test_agent_transport import write_token

pytestmark = pytest.mark.bpf
SCRIPTS = Path(__file__).resolve().parent / "scripts"
CALLS = 5

# Probes the run's target, says so, emits one row per call, ends after `n` calls.
COUNTS_WORK = """
import * as coral from "@coral/sdk";

const { n } = await coral.params();
const calls = coral.trace.uprobe("coral_work", { args: 1 });
await calls.ready();
console.log("subscribed");
let seen = 0;
for await (const e of calls) {
  seen++;
  await coral.emit("work", { i: e.args[0] });
  if (seen >= Number(n)) break;
}
console.log(`done after ${seen}`);
console.error("counted");
"""
# Probes the run's target and waits for calls that never come.
WAITS_ON_WORK = """
import * as coral from "@coral/sdk";

const calls = coral.trace.uprobe("coral_work");
await calls.ready();
console.log("subscribed");
for await (const _ of calls) console.log("event");
"""


def script(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(code)
    return path


def counted_run(coral, counter: Path, path: Path, *extra: str) -> tuple[int, str, str]:
    """`coral run PATH --pid P --binary COUNTER` against a counter held until the script subscribed."""
    target = held_counter(counter, CALLS)
    try:
        run = coral.popen("run", str(path), "--pid", str(target.pid), "--binary", str(counter),
                          "--param", f"n={CALLS}", *extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = run.stdout.readline()
        assert first == "subscribed\n", first + run.stderr.read()
        target.stdin.write("go\n")
        target.stdin.flush()
        out, err = run.communicate(timeout=120)
        assert target.wait(timeout=60) == CALLS % 7
    finally:
        if target.poll() is None:
            target.kill()
    return run.returncode, first + out, err


def execution_of(agent: Agent, name: str) -> str:
    """The execution id the agent logged for the run of `name`."""
    found = [m.group(1) for line in agent.lines
             if (m := re.match(rf"coral agent: running {re.escape(name)} as execution (\w+) ", line))]
    assert len(found) == 1, agent.lines
    return found[0]


def wait_for_end(agent: Agent, execution_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ended = [line for line in agent.lines if line.startswith(f"coral agent: execution {execution_id} ended ")]
        if ended:
            return ended[0]
        time.sleep(0.05)
    pytest.fail(f"execution {execution_id} did not end: {agent.lines}")


def test_a_counting_run_prints_exits_and_is_recorded_as_a_local_run(agent, coral, targets, tmp_path):
    path = script(tmp_path, "count_work.ts", COUNTS_WORK)
    remote = counted_run(coral, targets["counter"], path)
    assert remote == (0, f"subscribed\ndone after {CALLS}\n", "counted\n")
    # The same script run locally (its own store, beside the agent) says the same.
    assert counted_run(coral, targets["counter"], path, "--db", str(tmp_path / "local.duckdb")) == remote
    execution_id = execution_of(agent, "count_work.ts")
    assert agent.probes_held() == {}

    assert agent.terminate() == 0
    assert coral.query("SELECT e.status, e.exit_code, s.name FROM script_executions e"
                       " JOIN scripts s ON s.id = e.script_id WHERE e.execution_id = ?",
                       [execution_id]) == [("completed", 0, "count_work.ts")]
    rows = coral.query("SELECT json_extract(data, '$.i')::INT FROM emitted_events"
                       " WHERE name = 'work' AND execution_id = ? ORDER BY 1", [execution_id])
    assert rows == [(i,) for i in range(1, CALLS + 1)]
    logs = coral.query("SELECT stream, line FROM script_logs WHERE execution_id = ?", [execution_id])
    assert sorted(logs) == sorted([("stdout", "subscribed"), ("stdout", f"done after {CALLS}"),
                                   ("stderr", "counted")])


def test_a_script_exiting_3_makes_the_client_exit_3(agent, coral, tmp_path):
    remote = coral.run("run", str(SCRIPTS / "hello_logs.ts"))
    local = coral.run("run", str(SCRIPTS / "hello_logs.ts"), "--db", str(tmp_path / "local.duckdb"))
    assert remote.returncode == local.returncode == 3
    assert remote.stdout == local.stdout == "out line 1\nout line 2\n"
    assert remote.stderr == local.stderr == "err line 1\n"
    execution_id = execution_of(agent, "hello_logs.ts")
    assert agent.terminate() == 0
    assert coral.query("SELECT status, exit_code FROM script_executions WHERE execution_id = ?",
                       [execution_id]) == [("failed", 3)]


def copy_paths_hidden(stderr: str) -> str:
    """The sandbox's copy of a script is in a directory of its own per run."""
    return re.sub(r"file:///tmp/coral-\w+/x\w+/", "file:///COPY/", stderr)


@pytest.mark.parametrize("code", [
    'import * as coral from "@coral/sdk";\nconst = 3;\n',                     # Deno cannot parse it
    'import { x } from "https://example.com/x.ts";\nconsole.log(x);\n',      # a remote import
])
def test_a_refused_script_gets_the_local_line_and_exit_code(agent, coral, tmp_path, code):
    path = script(tmp_path, "refused.ts", code)
    remote = coral.run("run", str(path))
    local = coral.run("run", str(path), "--db", str(tmp_path / "local.duckdb"))
    assert remote.returncode == local.returncode == 2
    assert len(remote.stderr.splitlines()) == 1 and remote.stderr.startswith("coral: script refused: ")
    assert copy_paths_hidden(remote.stderr) == copy_paths_hidden(local.stderr)
    assert remote.stdout == ""


def test_bad_targets_and_local_imports_are_one_line(agent, coral, tmp_path):
    result = coral.run("run", str(SCRIPTS / "hello_logs.ts"), "--pid", "999999")
    assert (result.returncode, result.stderr) == (2, "coral: no process with pid 999999\n")
    result = coral.run("run", str(SCRIPTS / "sandbox" / "import_sibling.ts"))
    assert result.returncode == 2
    assert result.stderr == ("coral: script refused: it imports ./sibling.ts; a script run through the agent is "
                             "one file that may import only @coral/sdk (or run it without the agent: --db PATH)\n")
    result = coral.run("run", str(SCRIPTS / "hello_logs.ts"), "--", "/bin/true")
    assert result.returncode == 2 and result.stderr.startswith("coral: -- COMMAND does not go through the agent")
    assert len(result.stderr.splitlines()) == 1
    # The agent still serves.
    assert coral.run("run", str(SCRIPTS / "hello_logs.ts")).returncode == 3


def test_sigterm_to_the_client_stops_the_run_in_the_agent(agent, coral, targets, tmp_path):
    path = script(tmp_path, "waits.ts", WAITS_ON_WORK)
    target = held_counter(targets["counter"], CALLS)
    try:
        run = coral.popen("run", str(path), "--pid", str(target.pid), "--binary", str(targets["counter"]),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = run.stdout.readline()
        assert first == "subscribed\n", first + run.stderr.read()
        held = agent.bpf_held()
        assert held["prog"]  # the run's probe, held by the agent
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
        assert run.returncode == 128 + signal.SIGTERM
        assert (out, err) == ("", "coral: script stopped: terminate\n")
        execution_id = execution_of(agent, "waits.ts")
        assert wait_for_end(agent, execution_id).startswith(
            f"coral agent: execution {execution_id} ended stopped, exit code ")
        assert released(held) == {} and agent.probes_held() == {}
    finally:
        target.kill()
        target.wait(30)
    # The agent still serves, and recorded the stop.
    assert coral.run("run", str(SCRIPTS / "hello_logs.ts")).returncode == 3
    assert agent.terminate() == 0
    [(status, reason)] = coral.query("SELECT status, end_reason FROM script_executions WHERE execution_id = ?",
                                     [execution_id])
    assert status == "stopped" and reason.startswith("its `coral run` call ended"), reason


def test_a_timeout_ends_and_exits_as_a_local_run(agent, coral, targets, tmp_path):
    path = script(tmp_path, "waits.ts", WAITS_ON_WORK)
    target = held_counter(targets["counter"], CALLS)
    try:
        results = [coral.run("run", str(path), "--pid", str(target.pid), "--binary", str(targets["counter"]),
                             "--timeout", "2", *db) for db in ([], ["--db", str(tmp_path / "local.duckdb")])]
    finally:
        target.kill()
        target.wait(30)
    remote, local = results
    assert remote.returncode == local.returncode == 124
    assert remote.stdout == local.stdout == "subscribed\n"
    assert remote.stderr == local.stderr == "coral: script stopped: timeout (2s), ended within the 5s grace period\n"


def test_watch_runs_again_through_the_agent_until_ctrl_c(agent, coral, tmp_path):
    path = script(tmp_path, "says.ts", 'console.log("version 1");\n')
    run = coral.popen("run", str(path), "--watch", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert run.stdout.readline() == "version 1\n"
        assert run.stderr.readline() == f"coral: watching {path} for changes (Ctrl-C to stop)\n"
        path.write_text('console.log("version 2");\n')
        assert run.stdout.readline() == "version 2\n"
        assert run.stderr.readline() == f"coral: watching {path} for changes (Ctrl-C to stop)\n"
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
        assert (run.returncode, out, err) == (128 + signal.SIGINT, "", "")
    finally:
        if run.poll() is None:
            run.kill()
    assert len([line for line in agent.lines if line.startswith("coral agent: running says.ts ")]) == 2


def test_the_rpc_streams_the_execution_its_lines_emits_and_end(agent, targets):
    """What other clients (an assistant, the colony) get from RunScript itself."""
    target = held_counter(targets["counter"], CALLS)
    outputs = []
    try:
        call = agent.stub.RunScript(pb.RunScriptRequest(code=COUNTS_WORK, params={"n": str(CALLS)}, pid=target.pid,
                                                        binary=str(targets["counter"]), name="counts"), timeout=120)
        for output in call:
            outputs.append(output)
            if output.WhichOneof("output") == "log" and output.log.line == "subscribed":
                target.stdin.write("go\n")
                target.stdin.flush()
        assert target.wait(timeout=60) == CALLS % 7
    finally:
        if target.poll() is None:
            target.kill()
    kinds = [o.WhichOneof("output") for o in outputs]
    assert kinds[0] == "execution_id" and kinds[-1] == "end" and kinds.count("end") == 1, kinds
    execution_id = outputs[0].execution_id
    assert execution_of(agent, "counts.ts") == execution_id
    logs = [(o.log.stream, o.log.line, o.log.execution_id) for o in outputs if o.HasField("log")]
    # In order within a stream; stdout and stderr are two pipes, read apart.
    assert [entry for entry in logs if entry[0] == "stdout"] == [
        ("stdout", "subscribed", execution_id), ("stdout", f"done after {CALLS}", execution_id)]
    assert [entry for entry in logs if entry[0] == "stderr"] == [("stderr", "counted", execution_id)]
    emits = [(o.emit.name, json.loads(o.emit.data)) for o in outputs if o.HasField("emit")]
    assert emits == [("work", {"i": i}) for i in range(1, CALLS + 1)]
    end = outputs[-1].end
    assert (end.status, end.has_exit_code, end.exit_code, end.reason) == ("completed", True, 0, "")


@pytest.mark.parametrize("request_fields,code,message", [
    ({"pid": 999999}, grpc.StatusCode.NOT_FOUND, "no process with pid 999999"),
    ({"name": "../escape.ts"}, grpc.StatusCode.INVALID_ARGUMENT,
     "invalid name '../escape.ts': a file name, e.g. check.ts"),
    ({"timeout_seconds": 90000}, grpc.StatusCode.INVALID_ARGUMENT,
     "invalid --timeout 90000: must be above 0 and at most 86400 (24h)"),
    ({"code": "x" * (2 << 20)}, grpc.StatusCode.INVALID_ARGUMENT,
     "script refused: its code is 2097152 bytes, over the 1 MiB limit of a script run through the agent"),
    # With the ".ts" the agent adds, one byte past what a file name may have.
    ({"name": "a" * 253}, grpc.StatusCode.INVALID_ARGUMENT,
     "invalid name: a file name has at most 255 bytes with its suffix, this one 256"),
    ({"name": "é" * 127 + ".ts"}, grpc.StatusCode.INVALID_ARGUMENT,  # 130 characters, 257 bytes
     "invalid name: a file name has at most 255 bytes with its suffix, this one 257"),
])
def test_the_rpc_refuses_bad_requests_in_one_line(agent, request_fields, code, message):
    request = pb.RunScriptRequest(**{"code": 'console.log("never");\n', **request_fields})
    with pytest.raises(grpc.RpcError) as info:
        list(agent.stub.RunScript(request, timeout=60))
    assert (info.value.code(), info.value.details()) == (code, message)
    assert dict(info.value.trailing_metadata())["coral-exit-code"] == "2"
    assert agent.proc.poll() is None


HELLO = 'console.log("hello");\n'


def run_to_end(stub, **fields) -> list:
    outputs = list(stub.RunScript(pb.RunScriptRequest(code=HELLO, **fields), timeout=120))
    assert outputs[-1].end.status == "completed", outputs[-1]
    return outputs


def test_a_name_at_the_limit_runs_and_line_breaks_cannot_forge_log_lines(agent):
    run_to_end(agent.stub, name="a" * 252)  # 255 bytes with ".ts"
    assert any(line.startswith(f"coral agent: running {'a' * 252}.ts as execution ") for line in agent.lines)
    outputs = run_to_end(agent.stub, name="x\ncoral agent: forged", created_by="me\ncoral agent: forged too")
    execution_id = outputs[0].execution_id
    assert not [line for line in agent.lines if line.startswith("coral agent: forged")], agent.lines
    assert (f"coral agent: running x\\x0acoral agent: forged.ts as execution {execution_id} for `coral run` "
            "(by me\\x0acoral agent: forged too)") in agent.lines


def test_over_tcp_a_run_names_only_targets_the_agents_rules_allow(agent_of, targets, tmp_path):
    token = write_token(tmp_path / "token", "run-token")
    agent = agent_of("--listen", "127.0.0.1:0", "--token-file", str(token))  # allows binary:<counter>
    counter = os.path.realpath(targets["counter"])
    other = os.path.realpath(targets["manyfuncs"])
    held = held_counter(targets["counter"], CALLS)
    try:
        with client.channel(f"127.0.0.1:{tcp_port(agent)}", home=tmp_path, token_file=token) as tcp:
            stub = client.stub(tcp)
            for fields, kind, name in [({"binary": other}, "binary", other),
                                       ({"pid": held.pid}, "pid", str(held.pid)),
                                       ({"pid": held.pid, "binary": counter}, "pid", str(held.pid)),
                                       # Refused like a file that exists: the refusal tells nothing.
                                       ({"binary": "/no/such/binary"}, "binary", "/no/such/binary")]:
                with pytest.raises(grpc.RpcError) as info:
                    list(stub.RunScript(pb.RunScriptRequest(code=HELLO, **fields), timeout=60))
                assert (info.value.code(), info.value.details()) == (
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{kind} {name} is not a target a client over TCP may name: no --allow-probe rule of the "
                    f"agent allows it (the operator may add --allow-probe {kind}:{name})")
                assert dict(info.value.trailing_metadata())["coral-exit-code"] == "2"
            run_to_end(stub, binary=counter)  # the rule's binary
            run_to_end(stub)  # no target at all
        # Over the Unix socket (the agent's own user) any target.
        run_to_end(agent.stub, pid=held.pid, binary=counter)
        run_to_end(agent.stub, binary=other)
    finally:
        held.kill()
        held.wait(30)
    assert agent.proc.poll() is None
