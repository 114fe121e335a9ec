"""Bad input against the real `coral agent start` (tests/test_agent_transport.py
covers the same refusals on the transport alone): each gets its gRPC code and
one line (the CLI: one line, exit non-zero, no traceback), and the agent goes
on serving after each."""

import re

import grpc
import pytest

from coral_probe.api import client, pb
from test_agent_service import Agent, code_of, deploy
from test_agent_transport import self_signed, write_token

pytestmark = pytest.mark.bpf

PORT = re.compile(r"\(port (\d+), ")


def one_line(result, code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("coral: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def still_serves(coral, *conn: str) -> None:
    result = coral.run("script", "list", *conn, timeout=60)
    assert result.returncode == 0, result.stderr


def tcp_port(agent: Agent) -> int:
    [port] = [int(m.group(1)) for line in agent.lines if (m := PORT.search(line))]
    return port


def test_unknown_script_and_execution_are_not_found(agent_of, coral, tmp_path):  # noqa: F811
    agent = agent_of()
    for command in (("status", "nothing"), ("logs", "nothing"), ("stop", "nothing"), ("delete", "nothing")):
        line = one_line(coral.run("script", *command, timeout=60))
        assert line == "coral: unknown script 'nothing': no deployed script has this id or name", command
    still_serves(coral)
    deployed = deploy(agent.stub, "hello", 'console.log("hi");\n')
    code, details = code_of(lambda: list(agent.stub.StreamScriptLogs(pb.StreamScriptLogsRequest(
        ref="hello", execution_id="0123456789abcdef"), timeout=30)))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "unknown execution '0123456789abcdef' of script 'hello'")
    line = one_line(coral.run("script", "logs", deployed.script_id, "--execution", "0123456789abcdef"))
    assert line == f"coral: unknown execution '0123456789abcdef' of script '{deployed.script_id}'"
    still_serves(coral)
    assert agent.terminate() == 0


@pytest.mark.parametrize("code,wanted", [
    ('const x: string = 1;\nconsole.log(x);\n', "TS2322 [ERROR]: Type 'number' is not assignable to type 'string'"),
    ('import { x } from "https://example.com/x.ts";\nconsole.log(x);\n', "it imports a remote or npm module"),
    ('import * as fs from "node:fs";\nconsole.log(fs);\n', "only @coral/sdk and files of their own directory"),
], ids=["deno-check", "remote-import", "node-import"])
def test_refused_deploys_are_one_line_and_nothing_is_deployed(agent_of, coral, tmp_path, code, wanted):  # noqa: F811
    agent = agent_of()
    script = tmp_path / "bad.ts"
    script.write_text(code)
    line = one_line(coral.run("script", "deploy", "--name", "bad", "--file", str(script), timeout=300))
    assert wanted in line
    rpc_code, details = code_of(lambda: deploy(agent.stub, "bad", code))
    assert rpc_code == grpc.StatusCode.INVALID_ARGUMENT and wanted in details and "\n" not in details
    assert agent.stub.ListScripts(pb.ListScriptsRequest(), timeout=30).scripts == []
    still_serves(coral)
    assert agent.terminate() == 0


def test_a_2_mib_script_is_refused(agent_of, coral, tmp_path):  # noqa: F811
    agent = agent_of()
    code = "// " + "x" * (2 << 20) + "\nconsole.log(1);\n"
    rpc_code, details = code_of(lambda: deploy(agent.stub, "big", code))
    assert rpc_code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == f"script refused: its code is {len(code)} bytes, over the 1 MiB limit"
    still_serves(coral)
    # The CLI says so itself, before any call.
    script = tmp_path / "big.ts"
    script.write_text(code)
    line = one_line(coral.run("script", "deploy", "--name", "big", "--file", str(script)), code=2)
    assert "larger than 1 MiB" in line
    assert agent.stub.ListScripts(pb.ListScriptsRequest(), timeout=30).scripts == []
    assert agent.terminate() == 0


def test_tcp_with_a_token(agent_of, coral, tmp_path):  # noqa: F811
    token = write_token(tmp_path / "token", "agent-token-1")
    wrong = write_token(tmp_path / "wrong", "agent-token-2")
    agent = agent_of("--listen", "127.0.0.1:0", "--token-file", str(token))
    addr = f"127.0.0.1:{tcp_port(agent)}"
    for given in (None, wrong):
        with client.channel(addr, home=tmp_path, token_file=given) as ch:
            code, details = code_of(lambda: client.stub(ch).ListScripts(pb.ListScriptsRequest(), timeout=30))
        assert code == grpc.StatusCode.UNAUTHENTICATED, details
        conn = ("--agent", addr) + (("--token-file", str(given)) if given else ())
        assert "bearer token" in one_line(coral.run("script", "list", *conn, timeout=60))
    with client.channel(addr, home=tmp_path, token_file=token) as ch:
        assert client.stub(ch).ListScripts(pb.ListScriptsRequest(), timeout=30).scripts == []
    still_serves(coral, "--agent", addr, "--token-file", str(token))
    still_serves(coral)  # the Unix socket asks no token
    assert agent.terminate() == 0


def test_tcp_with_mutual_tls(agent_of, coral, tmp_path):  # noqa: F811
    cert, key = self_signed(tmp_path, "agent")
    operator_cert, operator_key = self_signed(tmp_path, "operator")  # its own CA: the one the agent trusts
    stranger_cert, stranger_key = self_signed(tmp_path, "stranger")
    agent = agent_of("--listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key),
                     "--client-ca", str(operator_cert))
    addr = f"127.0.0.1:{tcp_port(agent)}"
    for given in ((), ("--tls-cert", str(stranger_cert), "--tls-key", str(stranger_key))):
        tls = dict(zip(("tls_cert", "tls_key"), given[1::2]))
        with client.channel(addr, home=tmp_path, tls_ca=cert, **tls) as ch:
            code, _ = code_of(lambda: client.stub(ch).ListScripts(pb.ListScriptsRequest(), timeout=30))
        assert code == grpc.StatusCode.UNAVAILABLE  # the handshake fails: no RPC reaches the agent
        one_line(coral.run("script", "list", "--agent", addr, "--tls-ca", str(cert), *given, timeout=60))
    good = ("--agent", addr, "--tls-ca", str(cert), "--tls-cert", str(operator_cert), "--tls-key", str(operator_key))
    still_serves(coral, *good)
    # A second agent on the same home is refused in one line; the first goes on serving.
    second = coral.run("agent", "start", "--listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key),
                       timeout=60)
    assert "in use by another process" in one_line(second, code=second.returncode)
    assert second.returncode != 0
    still_serves(coral, *good)
    still_serves(coral)
    assert agent.terminate() == 0


def test_listen_without_tls_or_token_is_one_line(coral):
    result = coral.run("agent", "start", "--listen", "127.0.0.1:0", timeout=60)
    assert result.returncode != 0
    line = one_line(result, code=result.returncode)
    assert "refusing plain TCP" in line
    assert not (coral.home / "agent.sock").exists() and not coral.db.exists()
    # And nothing of it keeps the home: an agent starts there right after.
    agent = Agent(coral)
    assert agent.terminate() == 0
