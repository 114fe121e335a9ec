"""`coral agent` (the hidden SDK server for scripts started elsewhere): its
token never on the command line, where `ps` shows it to every user, and its
`--socket PATH` never replacing anything but a stale socket of its own kind."""

import os
import socket
import subprocess
from pathlib import Path

import pytest

from coral_probe.agent.framing import FrameReader, frame
from coral_probe.gen.coral.sdk.v1 import sdk_pb2 as pb

TOKEN = "coral-secret-token-5a1b"


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "token"
    path.touch(mode=0o600)
    path.write_text(TOKEN + "\n")
    return path


def start_agent(coral, sock: Path, token_file: Path) -> subprocess.Popen:
    agent = coral.popen("agent", "--socket", str(sock), "--token-file", str(token_file),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = agent.stdout.readline()
    if not line.startswith("coral agent: serving"):
        agent.kill()
        pytest.fail(f"agent did not start: {line}{agent.stderr.read()}")
    return agent


def stop(agent: subprocess.Popen) -> None:
    agent.terminate()
    agent.wait(timeout=30)


def hello(sock: Path, token: str) -> pb.Response:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(sock))
        s.sendall(frame(pb.Request(id=1, hello=pb.Hello(token=token))))
        return pb.Response.FromString(FrameReader(s).read())


def test_the_token_comes_from_a_file_not_the_command_line(coral, tmp_path, token_file):
    sock = tmp_path / "sdk.sock"
    agent = start_agent(coral, sock, token_file)
    try:
        cmdline = Path(f"/proc/{agent.pid}/cmdline").read_bytes()
        assert TOKEN.encode() not in cmdline
        assert hello(sock, TOKEN).hello.execution_id
        assert hello(sock, "wrong").error.code == "PERMISSION_DENIED"
    finally:
        stop(agent)
    # Nor is the token kept in the database as an execution id.
    assert coral.query("SELECT count(*) FROM script_executions WHERE execution_id = ?", [TOKEN]) == [(0,)]


def test_a_token_file_others_can_read_is_refused(coral, tmp_path, token_file):
    token_file.chmod(0o644)
    result = coral.run("agent", "--socket", str(tmp_path / "sdk.sock"), "--token-file", str(token_file))
    assert result.returncode == 2
    assert result.stderr == f"coral: --token-file {token_file}: readable by others (mode 644); chmod 600 it\n"


def test_a_file_at_the_socket_path_is_left_alone(coral, tmp_path, token_file):
    precious = tmp_path / "precious.conf"
    precious.write_text("keep me\n")
    result = coral.run("agent", "--socket", str(precious), "--token-file", str(token_file), timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"coral: --socket {precious}: exists and is not a socket; refusing to replace it\n"
    assert precious.read_text() == "keep me\n"


def test_a_live_socket_is_in_use_and_a_stale_one_is_replaced(coral, tmp_path, token_file):
    sock = tmp_path / "sdk.sock"
    first = start_agent(coral, sock, token_file)
    try:
        second = coral.run("agent", "--socket", str(sock), "--token-file", str(token_file),
                           "--db", str(tmp_path / "second.duckdb"), timeout=60)
        assert second.returncode == 2
        assert second.stderr == f"coral: --socket {sock}: in use by another process (an agent is serving it)\n"
        assert hello(sock, TOKEN).hello.execution_id  # the first one still serves
    finally:
        stop(first)
    # A socket nobody listens on (its agent was killed before removing it).
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()
    assert sock.is_socket()
    agent = start_agent(coral, sock, token_file)
    try:
        assert hello(sock, TOKEN).hello.execution_id
    finally:
        stop(agent)
    assert not os.path.exists(sock)
