"""`coral script …` against a real gRPC server on a real Unix socket
(coral_probe.api.transport.serve): a small servicer here records each request
and answers fixed replies, so what is under test is the CLI's side of the
wire: options → request, replies → tables and JSON, the agent's errors →
one line and exit 1, bad input → one line and exit 2 before any RPC."""

import getpass
import json
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from coral_probe.api import pb, pb_grpc, transport

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


SCRIPTS = [
    pb.Script(id="550e8400-e29b-41d4-a716-446655440000", name="high-latency-alert", version=2,
              status=pb.SCRIPT_STATUS_RUNNING, mode=pb.SCRIPT_MODE_DAEMON, created_by="alice",
              created_at=ts(NOW - timedelta(minutes=2)), params={"threshold_ms": "500"},
              trigger=pb.ScriptTrigger(schedule=pb.ScheduleTrigger(cron="*/5 * * * *"))),
    pb.Script(id="7c9e6679-7425-40de-944b-e07fc1f90ae7", name="evil\x1b[31mname", version=1,
              status=pb.SCRIPT_STATUS_STOPPED, created_by="bob", created_at=ts(NOW - timedelta(hours=3)),
              trigger=pb.ScriptTrigger(manual=pb.ManualTrigger())),
]


class Recording(pb_grpc.AgentServiceServicer):
    """Records every request; `fail[method] = (code, message)` makes it refuse."""

    def __init__(self):
        self.requests: list[tuple[str, object]] = []
        self.fail: dict[str, tuple[grpc.StatusCode, str]] = {}

    def _enter(self, method, request, context):
        self.requests.append((method, request))
        if method in self.fail:
            code, message = self.fail[method]
            context.abort(code, message)

    def DeployScript(self, request, context):
        self._enter("DeployScript", request, context)
        return pb.DeployScriptResponse(script_id="550e8400-e29b-41d4-a716-446655440000", version=3,
                                       status=pb.SCRIPT_STATUS_RUNNING,
                                       replaced_script_id="7c9e6679-7425-40de-944b-e07fc1f90ae7")

    def ListScripts(self, request, context):
        self._enter("ListScripts", request, context)
        # Ages as of this call (the table shows "2m ago"), not as of the import.
        self.listed_at = datetime.now(timezone.utc).replace(microsecond=0)
        scripts = [pb.Script(), pb.Script()]
        for s, template, age in zip(scripts, SCRIPTS, (timedelta(minutes=2), timedelta(hours=3))):
            s.CopyFrom(template)
            s.created_at.CopyFrom(ts(self.listed_at - age))
        return pb.ListScriptsResponse(scripts=scripts)

    def GetScriptStatus(self, request, context):
        self._enter("GetScriptStatus", request, context)
        return pb.GetScriptStatusResponse(
            script_id=SCRIPTS[0].id, status=pb.SCRIPT_STATUS_FAILED, script=SCRIPTS[0],
            executions=[
                pb.ScriptExecution(execution_id="exec-2", script_id=SCRIPTS[0].id, status=pb.SCRIPT_STATUS_FAILED,
                                   started_at=ts(NOW - timedelta(seconds=90)),
                                   completed_at=ts(NOW - timedelta(seconds=88)),
                                   exit_code=3, has_exit_code=True, end_reason="crash",
                                   stdout="checking p99\n", stderr="Error: boom\n"),
                pb.ScriptExecution(execution_id="exec-1", script_id=SCRIPTS[0].id,
                                   status=pb.SCRIPT_STATUS_COMPLETED,
                                   started_at=ts(NOW - timedelta(minutes=2)),
                                   completed_at=ts(NOW - timedelta(minutes=2) + timedelta(milliseconds=1500)),
                                   exit_code=0, has_exit_code=True, end_reason="exit"),
                pb.ScriptExecution(execution_id="exec-0", script_id=SCRIPTS[0].id,
                                   status=pb.SCRIPT_STATUS_INTERRUPTED,
                                   started_at=ts(NOW - timedelta(minutes=3)), end_reason="interrupted"),
            ])

    def StreamScriptLogs(self, request, context):
        self._enter("StreamScriptLogs", request, context)
        yield pb.ScriptLogBatch(entries=[pb.ScriptLogEntry(stream="stdout", line="first line", execution_id="exec-2"),
                                         pb.ScriptLogEntry(stream="stderr", line="an error line", execution_id="exec-2")])
        yield pb.ScriptLogBatch(entries=[
            pb.ScriptLogEntry(stream="stdout", line="after a gap \x1b[2J", execution_id="exec-2", lost=7),
            pb.ScriptLogEntry(stream="stdout", line="the last line", execution_id="exec-2")])

    def StopScript(self, request, context):
        self._enter("StopScript", request, context)
        return pb.StopScriptResponse(success=True, script_id=SCRIPTS[0].id, status=pb.SCRIPT_STATUS_STOPPED)

    def DeleteScript(self, request, context):
        self._enter("DeleteScript", request, context)
        return pb.DeleteScriptResponse(success=True, script_ids=[SCRIPTS[0].id, SCRIPTS[1].id])


@pytest.fixture
def agent(coral):
    # A short directory: a Unix socket path has 107 bytes.
    home = Path(tempfile.mkdtemp(prefix="coral-cli-", dir="/tmp"))
    servicer = Recording()
    server = transport.serve(servicer, socket_path=home / "agent.sock")
    coral.env["CORAL_HOME"] = str(home)  # the default --agent
    servicer.coral = coral
    yield servicer
    server.stop(None)
    shutil.rmtree(home, ignore_errors=True)


def script_file(tmp_path: Path, text: str = 'console.log("hi");\n') -> Path:
    path = tmp_path / "s.ts"
    path.write_text(text)
    return path


def one_line_error(out, code: int) -> str:
    assert out.returncode == code, (out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("coral: "), out.stderr
    return lines[0]


def test_deploy_maps_options_to_the_request(agent, tmp_path):
    f = script_file(tmp_path)
    out = agent.coral.run("script", "deploy", "--name", "nightly", "--file", str(f), "--param", "a=1",
                          "--param", "query=x=y", "--cron", "0 3 * * *", "--daemon", "--timeout", "120")
    assert out.returncode == 0, out.stderr
    [(method, req)] = agent.requests
    assert method == "DeployScript"
    s = req.script
    assert (s.name, s.code, dict(s.params)) == ("nightly", 'console.log("hi");\n', {"a": "1", "query": "x=y"})
    assert s.trigger.WhichOneof("trigger") == "schedule" and s.trigger.schedule.cron == "0 3 * * *"
    assert s.mode == pb.SCRIPT_MODE_DAEMON and s.timeout_seconds == 120
    assert s.created_by == getpass.getuser()
    assert "Script deployed: nightly" in out.stdout
    assert "ID: 550e8400-e29b-41d4-a716-446655440000" in out.stdout
    assert "Version: 3" in out.stdout and "Status: RUNNING" in out.stdout
    assert "Replaces: 7c9e6679-7425-40de-944b-e07fc1f90ae7" in out.stdout


def test_deploy_defaults_and_event_trigger(agent, tmp_path):
    f = script_file(tmp_path)
    assert agent.coral.run("script", "deploy", "--name", "once", "--file", str(f),
                           "--created-by", "ci-bot").returncode == 0
    assert agent.coral.run("script", "deploy", "--name", "ev", "--file", str(f),
                           "--when", "SELECT 1 FROM emitted_events").returncode == 0
    out = agent.coral.run("script", "deploy", "--name", "ev", "--file", str(f), "--json",
                          "--when", "SELECT 1", "--every", "1.5m")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"script_id": "550e8400-e29b-41d4-a716-446655440000", "name": "ev",
                                      "version": 3, "status": "running", "deployed_to": [],
                                      "replaced_script_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}
    once, ev, ev2 = (r.script for _, r in agent.requests)
    assert once.trigger.WhichOneof("trigger") == "manual"
    assert once.mode == pb.SCRIPT_MODE_AD_HOC and once.timeout_seconds == 0 and not once.params
    assert once.created_by == "ci-bot"
    assert ev.trigger.event.condition == "SELECT 1 FROM emitted_events"
    assert ev.trigger.event.check_interval_seconds == 0  # the agent's default (agent/triggers.py)
    assert ev2.trigger.event.check_interval_seconds == 90


@pytest.mark.parametrize("args, code, words", [
    (["--cron", "* * * * *", "--when", "SELECT 1"], 2, "exclude"),
    (["--every", "30s"], 2, "--every goes with --when"),
    (["--when", "SELECT 1", "--every", "fast"], 2, "invalid --every"),
    (["--when", "SELECT 1", "--every", "100ms"], 2, "between 1s and 24h"),
    (["--param", "novalue"], 2, "expected KEY=VALUE"),
    (["--timeout", "0"], 2, "--timeout"),
])
def test_deploy_usage_errors_before_any_rpc(agent, tmp_path, args, code, words):
    f = script_file(tmp_path)
    line = one_line_error(agent.coral.run("script", "deploy", "--name", "x", "--file", str(f), *args), code)
    assert words in line
    assert agent.requests == []


def test_bad_file_is_one_line_before_any_rpc(agent, tmp_path):
    line = one_line_error(agent.coral.run("script", "deploy", "--name", "x", "--file",
                                          str(tmp_path / "missing.ts")), 2)
    assert "missing.ts" in line and "No such file" in line
    big = tmp_path / "big.ts"
    big.write_bytes(b"//" + b"x" * (2 << 20))
    line = one_line_error(agent.coral.run("script", "deploy", "--name", "x", "--file", str(big)), 2)
    assert "larger than 1 MiB" in line
    binary = tmp_path / "bin.ts"
    binary.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in one_line_error(agent.coral.run("script", "deploy", "--name", "x", "--file",
                                                         str(binary)), 2)
    assert agent.requests == []


def test_exactly_one_mebibyte_is_sent(agent, tmp_path):
    f = tmp_path / "edge.ts"
    f.write_bytes(b"/" * (1 << 20))
    assert agent.coral.run("script", "deploy", "--name", "edge", "--file", str(f)).returncode == 0
    assert len(agent.requests[0][1].script.code) == 1 << 20


def test_the_size_checked_before_sending_is_the_agents():
    from coral_probe import script_cli
    from coral_probe.agent import registry

    assert script_cli.MAX_CODE_BYTES == registry.MAX_CODE_BYTES


def test_list_table_and_filter(agent):
    out = agent.coral.run("script", "list", "--status", "running")
    assert out.returncode == 0, out.stderr
    [(_, req)] = agent.requests
    assert req.status == pb.SCRIPT_STATUS_RUNNING and not req.all_versions
    header, *rows = [line for line in out.stdout.splitlines() if line.strip() and not set(line) <= set("─ ")]
    assert header.split() == ["ID", "NAME", "VERSION", "STATUS", "TRIGGER", "CREATED", "BY"]
    assert rows[0].split()[:4] == [SCRIPTS[0].id, "high-latency-alert", "2", "RUNNING"]
    assert "cron */5 * * * *" in rows[0] and "2m ago" in rows[0] and rows[0].split()[-1] == "alice"
    # Another user's script name cannot drive the terminal.
    assert "\x1b" not in out.stdout and "evil\\x1b[31mname" in rows[1]
    assert "3h ago" in rows[1] and "STOPPED" in rows[1] and "manual" in rows[1]

    agent.coral.run("script", "list")
    assert agent.requests[-1][1].status == pb.SCRIPT_STATUS_UNSPECIFIED


def test_list_json_lines(agent):
    out = agent.coral.run("script", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["name"] for r in rows] == ["high-latency-alert", "evil\x1b[31mname"]
    first = rows[0]
    assert first["status"] == "running" and first["mode"] == "daemon" and first["version"] == 2
    assert first["trigger"] == {"type": "schedule", "cron": "*/5 * * * *"}
    assert first["params"] == {"threshold_ms": "500"} and first["created_by"] == "alice"
    assert datetime.fromisoformat(first["created_at"].replace("Z", "+00:00")) == agent.listed_at - timedelta(minutes=2)
    assert out.stdout.isascii()


def test_status_shows_executions_with_exit_codes(agent):
    out = agent.coral.run("script", "status", "high-latency-alert", "--tail", "5")
    assert out.returncode == 0, out.stderr
    [(_, req)] = agent.requests
    assert req.ref == "high-latency-alert" and req.tail == 5
    text = out.stdout
    assert "Script: high-latency-alert (v2)" in text and "Status: FAILED" in text
    assert "Trigger: cron */5 * * * *" in text and "by alice" in text
    lines = text.splitlines()
    header = next(line for line in lines if "EXECUTION" in line)
    assert header.split() == ["EXECUTION", "STATUS", "STARTED", "ENDED", "DURATION", "EXIT", "REASON"]
    row = {line.split()[0]: line.split() for line in lines if line.strip().startswith("exec-")}
    assert row["exec-2"][1] == "FAILED" and row["exec-2"][-2:] == ["3", "crash"] and "2s" in row["exec-2"]
    assert row["exec-1"][1] == "COMPLETED" and row["exec-1"][-2:] == ["0", "exit"] and "1.5s" in row["exec-1"]
    assert row["exec-0"][-4:] == ["-", "-", "-", "interrupted"]  # cut off, not running
    assert all(line == line.rstrip() for line in lines)
    assert "checking p99" in text and "stderr: Error: boom" in text
    # The latest execution's last lines; `coral script logs` reads the same execution.
    assert "Latest output (exec-2, its last lines; `coral script logs high-latency-alert --tail N` for more):" in text


def test_status_json(agent):
    out = agent.coral.run("script", "status", SCRIPTS[0].id, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == "failed" and doc["script"]["name"] == "high-latency-alert"
    assert [(e["execution_id"], e["exit_code"], e["end_reason"]) for e in doc["executions"]] == [
        ("exec-2", 3, "crash"), ("exec-1", 0, "exit"), ("exec-0", None, "interrupted")]
    assert doc["executions"][2]["completed_at"] is None
    assert agent.requests[0][1].tail == 0


def test_logs_streams_lines_and_counts_losses(agent):
    out = agent.coral.run("script", "logs", "high-latency-alert", "--tail", "50")
    assert out.returncode == 0, out.stderr
    [(_, req)] = agent.requests
    assert (req.ref, req.tail, req.follow) == ("high-latency-alert", 50, False)
    assert out.stdout.splitlines() == ["first line", "after a gap \\x1b[2J", "the last line"]
    assert out.stderr.splitlines() == ["an error line", "coral: 7 log lines dropped here by the script's log limits"]
    agent.coral.run("script", "logs", "x", "--follow")
    assert agent.requests[-1][1].follow is True


def test_stop_and_delete(agent):
    out = agent.coral.run("script", "stop", "high-latency-alert")
    assert out.returncode == 0, out.stderr
    assert "Script stopped: high-latency-alert" in out.stdout and "Status: STOPPED" in out.stdout
    out = agent.coral.run("script", "delete", "high-latency-alert")
    assert out.returncode == 0, out.stderr
    assert SCRIPTS[1].id in out.stdout
    (m1, stop), (m2, delete) = agent.requests
    assert (m1, stop.ref) == ("StopScript", "high-latency-alert")
    assert (m2, delete.ref) == ("DeleteScript", "high-latency-alert")


@pytest.mark.parametrize("method, argv, code, message", [
    ("GetScriptStatus", ["status", "nope"], grpc.StatusCode.NOT_FOUND, "no script 'nope'"),
    ("StopScript", ["stop", "nope"], grpc.StatusCode.NOT_FOUND, "no script 'nope'"),
    ("DeleteScript", ["delete", "nope"], grpc.StatusCode.NOT_FOUND, "no script 'nope'"),
    ("StreamScriptLogs", ["logs", "nope"], grpc.StatusCode.NOT_FOUND, "no script 'nope'"),
    ("DeployScript", ["deploy", "--name", "x", "--file", "FILE"], grpc.StatusCode.INVALID_ARGUMENT,
     "main.ts:1:7 - error TS2322: Type 'string' is not assignable to type 'number'."),
    ("DeployScript", ["deploy", "--name", "x", "--file", "FILE", "--cron", "* * * * *"],
     grpc.StatusCode.UNIMPLEMENTED, "schedule triggers are not implemented yet"),
    ("ListScripts", ["list"], grpc.StatusCode.INTERNAL, "store closed"),
])
def test_agent_errors_are_one_line_exit_1(agent, tmp_path, method, argv, code, message):
    agent.fail[method] = (code, message + "\nsecond line not shown")
    argv = [str(script_file(tmp_path)) if a == "FILE" else a for a in argv]
    line = one_line_error(agent.coral.run("script", *argv), 1)
    assert line == f"coral: {message}"
    assert [m for m, _ in agent.requests] == [method]


def test_unreachable_agent(coral, tmp_path):
    home = Path(tempfile.mkdtemp(prefix="coral-none-", dir="/tmp"))
    try:
        coral.env["CORAL_HOME"] = str(home)
        line = one_line_error(coral.run("script", "list"), 1)
        assert line == f"coral: no agent at unix:{home}/agent.sock (start one with `coral agent start`)"
        line = one_line_error(coral.run("script", "status", "x", "--agent", f"unix:{home}/other.sock"), 1)
        assert f"no agent at unix:{home}/other.sock" in line
        # The file is checked before the agent is dialled.
        assert "missing.ts" in one_line_error(coral.run("script", "deploy", "--name", "x", "--file",
                                                        str(tmp_path / "missing.ts")), 2)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_bad_agent_option_is_usage(coral):
    assert "expected unix:PATH or HOST:PORT" in one_line_error(coral.run("script", "list", "--agent", "nowhere"), 2)
    assert "go together" in one_line_error(
        coral.run("script", "list", "--agent", "127.0.0.1:1", "--tls-cert", "/dev/null"), 2)


def test_token_over_tcp(agent, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o600)
    home = Path(tempfile.mkdtemp(prefix="coral-tcp-", dir="/tmp"))
    server = transport.serve(agent, socket_path=home / "agent.sock", listen="127.0.0.1:0", token_file=token)
    try:
        address = f"127.0.0.1:{server.coral_tcp_port}"
        out = agent.coral.run("script", "list", "--agent", address, "--token-file", str(token), "--json")
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.splitlines()) == 2
        wrong = tmp_path / "wrong"
        wrong.write_text("guess\n")
        line = one_line_error(agent.coral.run("script", "list", "--agent", address, "--token-file", str(wrong)), 1)
        assert "bearer token" in line
    finally:
        server.stop(None)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.bpf
def test_end_to_end(coral, tmp_path):
    """The real agent (`coral agent start`, Deno sandbox): deploy, status, logs, delete."""
    import signal
    import subprocess
    import time

    log = tmp_path / "agent.log"
    with open(log, "w") as stderr:
        proc = coral.popen("agent", "start", stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not (coral.home / "agent.sock").is_socket():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        f = script_file(tmp_path, 'console.log("hello from a deployed script");\n')
        out = coral.run("script", "deploy", "--name", "hello", "--file", str(f))
        assert out.returncode == 0, out.stderr
        assert "Script deployed: hello" in out.stdout and "Version: 1" in out.stdout
        while True:
            out = coral.run("script", "status", "hello", "--json")
            assert out.returncode == 0, out.stderr
            doc = json.loads(out.stdout)
            if doc["executions"] and doc["executions"][0]["completed_at"]:
                break
            assert time.monotonic() < deadline + 60, doc
            time.sleep(0.2)
        assert doc["executions"][0]["exit_code"] == 0 and doc["script"]["created_by"] == getpass.getuser()
        out = coral.run("script", "status", "hello")
        assert out.returncode == 0, out.stderr
        [row] = [line.split() for line in out.stdout.splitlines() if line.startswith(doc["executions"][0]
                                                                                     ["execution_id"])]
        assert row[1] == "COMPLETED" and row[-2] == "0"
        out = coral.run("script", "logs", "hello")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["hello from a deployed script"]
        assert coral.run("script", "delete", "hello").returncode == 0
        line = one_line_error(coral.run("script", "status", "hello"), 1)
        assert "hello" in line
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()
