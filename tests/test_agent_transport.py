"""The AgentService transport (coral_probe/api): a real gRPC server over a real
Unix socket and real TCP, with a small servicer, so only the transport is
under test: socket mode and owner, TCP refused without credentials, bearer
token, TLS and mutual TLS."""

import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from coral_probe.api import client, pb, pb_grpc, transport
from coral_probe.errors import CoralError

CALL_TIMEOUT = 30  # seconds; a guard against a hang, not a measurement


class FixedScripts(pb_grpc.AgentServiceServicer):
    def ListScripts(self, request, context):
        return pb.ListScriptsResponse(scripts=[
            pb.Script(id="s-1", name="slow-queries", version=1,
                      status=pb.SCRIPT_STATUS_RUNNING, mode=pb.SCRIPT_MODE_DAEMON,
                      params={"threshold_ms": "500"}),
            pb.Script(id="s-2", name="errors", version=3, status=pb.SCRIPT_STATUS_STOPPED),
        ])


@pytest.fixture
def servers():
    started = []

    def start(**kwargs):
        server = transport.serve(FixedScripts(), **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(None)


def names(ch: grpc.Channel) -> list[str]:
    with ch:
        reply = client.stub(ch).ListScripts(pb.ListScriptsRequest(), timeout=CALL_TIMEOUT)
    return [s.name for s in reply.scripts]


def code_of(ch: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        names(ch)
    return err.value.code()


def write_token(path: Path, token: str) -> Path:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def self_signed(dir: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (also usable as its own CA)."""
    # scripts/setup.sh installs it: a skip here would hide the TLS tests from CI.
    assert shutil.which("openssl"), "the openssl CLI is needed (Debian package openssl)"
    cert, key = dir / f"{name}.crt", dir / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def test_unix_socket_is_private_and_serves(tmp_path, servers):
    home = tmp_path / "home"  # does not exist yet: created 0700
    sock = home / "agent.sock"
    servers(socket_path=sock)
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    # The default target is $CORAL_HOME/agent.sock; unix:PATH names it too.
    assert names(client.channel(None, home=home)) == ["slow-queries", "errors"]
    assert names(client.channel(f"unix:{sock}", home=tmp_path)) == ["slow-queries", "errors"]


def test_unix_socket_needs_no_token_when_tcp_has_one(tmp_path, servers):
    token = write_token(tmp_path / "token", "s3cret")
    servers(socket_path=tmp_path / "agent.sock", listen="127.0.0.1:0", token_file=token)
    assert names(client.channel(None, home=tmp_path)) == ["slow-queries", "errors"]


def test_second_server_on_a_live_socket_is_refused(tmp_path, servers):
    servers(socket_path=tmp_path / "agent.sock")
    with pytest.raises(CoralError) as err:
        servers(socket_path=tmp_path / "agent.sock")
    assert "in use" in str(err.value) and "\n" not in str(err.value)


def test_tcp_without_tls_or_token_is_refused_in_one_line(tmp_path, servers):
    with pytest.raises(CoralError) as err:
        servers(socket_path=tmp_path / "agent.sock", listen="127.0.0.1:0")
    message = str(err.value)
    assert "\n" not in message
    assert "--listen 127.0.0.1:0" in message and "--token-file" in message
    assert not (tmp_path / "agent.sock").exists()


def test_tcp_with_token(tmp_path, servers):
    token = write_token(tmp_path / "token", "s3cret-token")
    wrong = write_token(tmp_path / "wrong", "s3cret-tokem")
    server = servers(socket_path=tmp_path / "agent.sock", listen="127.0.0.1:0", token_file=token)
    addr = f"127.0.0.1:{server.coral_tcp_port}"
    assert code_of(client.channel(addr, home=tmp_path)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(client.channel(addr, home=tmp_path, token_file=wrong)) == \
        grpc.StatusCode.UNAUTHENTICATED
    assert names(client.channel(addr, home=tmp_path, token_file=token)) == ["slow-queries", "errors"]


def test_tcp_token_also_guards_streaming_rpcs(tmp_path, servers):
    token = write_token(tmp_path / "token", "s3cret-token")
    server = servers(socket_path=tmp_path / "agent.sock", listen="127.0.0.1:0", token_file=token)
    with client.channel(f"127.0.0.1:{server.coral_tcp_port}", home=tmp_path) as ch:
        stream = client.stub(ch).StreamScriptLogs(pb.StreamScriptLogsRequest(ref="errors"),
                                                  timeout=CALL_TIMEOUT)
        with pytest.raises(grpc.RpcError) as err:
            list(stream)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_tcp_with_tls(tmp_path, servers):
    cert, key = self_signed(tmp_path, "agent")
    server = servers(socket_path=tmp_path / "agent.sock", listen="127.0.0.1:0",
                     tls_cert=cert, tls_key=key)
    addr = f"127.0.0.1:{server.coral_tcp_port}"
    assert names(client.channel(addr, home=tmp_path, tls_ca=cert)) == ["slow-queries", "errors"]
    # A plaintext client does not get through a TLS port.
    assert code_of(client.channel(addr, home=tmp_path)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate(tmp_path, servers):
    cert, key = self_signed(tmp_path, "agent")
    client_cert, client_key = self_signed(tmp_path, "operator")
    server = servers(socket_path=tmp_path / "agent.sock", listen="127.0.0.1:0",
                     tls_cert=cert, tls_key=key, client_ca=client_cert)
    addr = f"127.0.0.1:{server.coral_tcp_port}"
    assert code_of(client.channel(addr, home=tmp_path, tls_ca=cert)) == grpc.StatusCode.UNAVAILABLE
    stranger_cert, stranger_key = self_signed(tmp_path, "stranger")
    assert code_of(client.channel(addr, home=tmp_path, tls_ca=cert, tls_cert=stranger_cert,
                                  tls_key=stranger_key)) == grpc.StatusCode.UNAVAILABLE
    assert names(client.channel(addr, home=tmp_path, tls_ca=cert, tls_cert=client_cert,
                                tls_key=client_key)) == ["slow-queries", "errors"]


def test_bad_addresses_are_one_line_errors(tmp_path):
    for agent in ("nonsense", "unix:", "host:99999"):
        with pytest.raises(CoralError) as err:
            client.channel(agent, home=tmp_path)
        assert "\n" not in str(err.value)


class HeldStreams(FixedScripts):
    """Log streams that stay open until released: each holds a server worker."""

    def __init__(self):
        self.release = threading.Event()

    def StreamScriptLogs(self, request, context):
        yield pb.ScriptLogBatch(entries=[pb.ScriptLogEntry(line="open")])
        self.release.wait(CALL_TIMEOUT)


def test_streams_past_their_share_of_workers_are_refused_and_short_calls_still_served(tmp_path):
    servicer = HeldStreams()
    server = transport.serve(servicer, socket_path=tmp_path / "agent.sock", max_workers=3, max_streams=2)
    try:
        with client.channel(None, home=tmp_path) as ch:
            stub = client.stub(ch)
            held = [stub.StreamScriptLogs(pb.StreamScriptLogsRequest(follow=True), timeout=CALL_TIMEOUT)
                    for _ in range(2)]
            assert [next(s).entries[0].line for s in held] == ["open", "open"]
            with pytest.raises(grpc.RpcError) as err:
                next(stub.StreamScriptLogs(pb.StreamScriptLogsRequest(follow=True), timeout=CALL_TIMEOUT))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert err.value.details() == "the agent has 2 streaming calls open (the limit)"
            # The worker kept from streams serves an operator's stop or status meanwhile.
            assert [s.name for s in stub.ListScripts(pb.ListScriptsRequest(), timeout=CALL_TIMEOUT).scripts] == \
                ["slow-queries", "errors"]
            servicer.release.set()
            for s in held:
                list(s)
        assert served_again(tmp_path)
    finally:
        server.stop(None)


def served_again(home: Path) -> bool:
    """Stream slots come back once their calls have ended (a moment after the client saw the end)."""
    deadline = time.monotonic() + CALL_TIMEOUT
    while True:
        try:
            with client.channel(None, home=home) as ch:
                return [b.entries[0].line for b in client.stub(ch).StreamScriptLogs(
                    pb.StreamScriptLogsRequest(), timeout=CALL_TIMEOUT)] == ["open"]
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
