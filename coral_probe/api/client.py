"""Connecting to an agent: `unix:PATH` or `HOST:PORT` (default: the local
socket $CORAL_HOME/agent.sock), with TLS (`tls_ca`, and a client certificate
for mutual TLS) and/or a bearer token sent as `authorization` metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import grpc

from ..errors import CoralError
from ..paths import agent_socket
from . import pb_grpc


def target(agent: str | None, *, home: str | os.PathLike[str]) -> tuple[str, bool]:
    """(gRPC target, is_unix) for an --agent value."""
    if agent is None or agent == "":
        return f"unix:{agent_socket(Path(home))}", True
    if agent.startswith("unix:"):
        path = agent[len("unix:"):]
        if not path:
            raise CoralError(f"--agent {agent}: expected unix:PATH")
        return f"unix:{os.path.abspath(path)}", True
    host, sep, port = agent.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise CoralError(f"--agent {agent}: expected unix:PATH or HOST:PORT")
    return agent, False


def channel(agent: str | None, *, home: str | os.PathLike[str],
            tls_ca: str | os.PathLike[str] | None = None,
            token_file: str | os.PathLike[str] | None = None,
            tls_cert: str | os.PathLike[str] | None = None,
            tls_key: str | os.PathLike[str] | None = None) -> grpc.Channel:
    """A channel to the agent. TLS is used on TCP when `tls_ca` (the CA that
    signed the agent's certificate) or a client certificate is given; the
    token, when given, goes with every call."""
    name, is_unix = target(agent, home=home)
    if (tls_cert is None) != (tls_key is None):
        raise CoralError("--tls-cert and --tls-key go together")
    tls = tls_ca is not None or tls_cert is not None
    if is_unix and tls:
        raise CoralError(f"--agent {name}: TLS options apply to HOST:PORT, not a Unix socket")
    if tls:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(tls_ca, "--tls-ca") if tls_ca is not None else None,
            private_key=_read(tls_key, "--tls-key") if tls_key is not None else None,
            certificate_chain=_read(tls_cert, "--tls-cert") if tls_cert is not None else None)
        ch = grpc.secure_channel(name, creds)
    else:
        ch = grpc.insecure_channel(name)
    if token_file is not None:
        token = _read(token_file, "--token-file").strip()
        if not token or b"\n" in token:
            raise CoralError(f"--token-file {token_file}: expected one non-empty line")
        ch = grpc.intercept_channel(ch, _BearerToken("Bearer " + token.decode()))
    return ch


def stub(ch: grpc.Channel) -> pb_grpc.AgentServiceStub:
    return pb_grpc.AgentServiceStub(ch)


def _read(path: str | os.PathLike[str], option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CoralError(f"{option} {path}: {e.strerror or e}") from None


class _ClientCallDetails(grpc.ClientCallDetails):
    def __init__(self, base: grpc.ClientCallDetails, metadata: list[tuple[str, str]]):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call (works on plain TCP
    too, where gRPC refuses call credentials)."""

    def __init__(self, value: str):
        self._value = value

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [m for m in (details.metadata or ()) if m[0] != "authorization"]
        metadata.append(("authorization", self._value))
        return _ClientCallDetails(details, metadata)

    def intercept_unary_unary(self, continuation: Callable[..., Any],
                              client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any],
                               client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any],
                               client_call_details: grpc.ClientCallDetails,
                               request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Callable[..., Any],
                                client_call_details: grpc.ClientCallDetails,
                                request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)
