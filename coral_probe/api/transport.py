"""Serving AgentService: always on a Unix socket (mode 0600, the agent's
user), optionally on TCP, and then only with TLS or a bearer token.

The Unix socket is protected by its mode and its parent directory (0700); no
token is asked there. On TCP, when a token file is given, every RPC must carry
`authorization: Bearer <token>` (compared in constant time) or it ends
UNAUTHENTICATED before the servicer sees it. With `client_ca`, TLS is mutual:
a client without a certificate signed by that CA fails the handshake."""

from __future__ import annotations

import hmac
import os
import stat
import threading
from concurrent import futures
from pathlib import Path
from typing import Any, Callable

import grpc

from ..agent.socket_path import claim
from ..errors import CoralError
from . import cpb_grpc, pb_grpc, qpb_grpc

# sun_path is 108 bytes with its NUL.
_MAX_UNIX_PATH = 107
_UNAUTHENTICATED = "missing or wrong bearer token (send `authorization: Bearer <token>`)"


# Each service the agent may serve, by its servicer base class.
_ADD_SERVICE = (
    (pb_grpc.AgentServiceServicer, pb_grpc.add_AgentServiceServicer_to_server),
    (pb_grpc.ProbeServiceServicer, pb_grpc.add_ProbeServiceServicer_to_server),
    (qpb_grpc.QueryServiceServicer, qpb_grpc.add_QueryServiceServicer_to_server),
    (cpb_grpc.ColonyServiceServicer, cpb_grpc.add_ColonyServiceServicer_to_server),
)


def serve(*servicers: object, socket_path: str | os.PathLike[str],
          listen: str | None = None, tls_cert: str | os.PathLike[str] | None = None,
          tls_key: str | os.PathLike[str] | None = None,
          client_ca: str | os.PathLike[str] | None = None,
          token_file: str | os.PathLike[str] | None = None,
          max_workers: int = 64, max_streams: int = 48) -> grpc.Server:
    """Starts a gRPC server for the servicers (each an AgentService,
    ProbeService, QueryService or ColonyService servicer) and returns it (started). With
    `listen`, the bound TCP port is `server.coral_tcp_port` (useful with port 0)."""
    path = Path(socket_path)
    check_options(socket_path=path, listen=listen, tls_cert=tls_cert, tls_key=tls_key, client_ca=client_ca,
                  token_file=token_file)
    token = _read_token(token_file) if token_file is not None else None
    tcp_credentials = None
    if tls_cert is not None and tls_key is not None:
        ca = _read(client_ca, "--client-ca") if client_ca is not None else None
        tcp_credentials = grpc.ssl_server_credentials(
            [(_read(tls_key, "--tls-key"), _read(tls_cert, "--tls-cert"))],
            root_certificates=ca, require_client_auth=ca is not None)
    host_port = _host_port(listen) if listen is not None else None

    make_parent(path)
    claim(os.fspath(path), what="agent socket")
    interceptors: list[grpc.ServerInterceptor] = [_BearerTokenInterceptor(token)] if token is not None else []
    interceptors.append(_StreamLimit(max_streams))
    # A streaming call (logs --follow, coral run, a probe session's events)
    # holds a worker for its whole life: streams get at most max_streams of
    # them, so that stop, status and the like always find one; past
    # max_workers calls, one more is refused at once rather than queued.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers,
                                                    thread_name_prefix="coral-api"),
                         interceptors=interceptors, maximum_concurrent_rpcs=max_workers,
                         options=[("grpc.so_reuseport", 0)])
    for servicer in servicers:
        adders = [add for base, add in _ADD_SERVICE if isinstance(servicer, base)]
        if not adders:
            raise TypeError(f"{type(servicer).__name__} is not a servicer of coral/agent/v1")
        for add in adders:
            add(servicer, server)
    # The socket is created with mode 0600 from the start (umask), not
    # chmod'ed after a moment of being reachable by everyone. The umask is the
    # process's: a file another thread creates meanwhile is only more private.
    old_umask = os.umask(0o177)
    try:
        try:
            server.add_insecure_port(f"unix:{path}")
        except RuntimeError:
            raise CoralError(f"agent socket {path}: cannot bind") from None
        if host_port is not None:
            port = _add_tcp_port(server, host_port, tcp_credentials)
            setattr(server, "coral_tcp_port", port)
        server.start()
    finally:
        os.umask(old_umask)
    try:
        os.chmod(path, 0o600)
        st = os.lstat(path)
    except OSError as e:
        server.stop(None)
        raise CoralError(f"agent socket {path}: {e.strerror or e}") from None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        server.stop(None)
        raise CoralError(f"agent socket {path}: not a socket owned by uid {os.geteuid()} after bind")
    return server


def check_options(*, socket_path: str | os.PathLike[str], listen: str | None = None,
                  tls_cert: str | os.PathLike[str] | None = None, tls_key: str | os.PathLike[str] | None = None,
                  client_ca: str | os.PathLike[str] | None = None,
                  token_file: str | os.PathLike[str] | None = None) -> None:
    """What serve() refuses about its options, checked before anything starts
    (an agent asks this before it opens its store): one CoralError line."""
    path = Path(socket_path)
    if len(os.fsencode(path)) > _MAX_UNIX_PATH:
        raise CoralError(f"agent socket {path}: path longer than {_MAX_UNIX_PATH} bytes")
    if (tls_cert is None) != (tls_key is None):
        raise CoralError("--tls-cert and --tls-key go together")
    if client_ca is not None and tls_cert is None:
        raise CoralError("--client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
    if listen is None and (tls_cert or token_file):
        raise CoralError("--tls-cert/--token-file only apply to --listen HOST:PORT")
    if listen is not None and tls_cert is None and token_file is None:
        raise CoralError(f"--listen {listen}: refusing plain TCP; give --tls-cert/--tls-key "
                         "or --token-file")
    if listen is not None:
        _host_port(listen)
    if token_file is not None:
        _read_token(token_file)
    for value, option in ((tls_cert, "--tls-cert"), (tls_key, "--tls-key"), (client_ca, "--client-ca")):
        if value is not None:
            _read(value, option)


def _add_tcp_port(server: grpc.Server, host_port: str,
                  credentials: grpc.ServerCredentials | None) -> int:
    try:
        if credentials is not None:
            port = server.add_secure_port(host_port, credentials)
        else:  # token only: the interceptor guards every RPC
            port = server.add_insecure_port(host_port)
    except RuntimeError:
        port = 0
    if port == 0:
        raise CoralError(f"--listen {host_port}: cannot bind (in use, or not an address of this host)")
    return port


def _host_port(listen: str) -> str:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise CoralError(f"--listen {listen}: expected HOST:PORT")
    return listen


def make_parent(path: Path) -> None:
    parent = path.parent
    if parent.is_dir():
        return
    try:
        parent.mkdir(mode=0o700, parents=True)
        os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        pass
    except OSError as e:
        raise CoralError(f"agent socket directory {parent}: {e.strerror or e}") from None


def _read(path: str | os.PathLike[str], option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CoralError(f"{option} {path}: {e.strerror or e}") from None


def _read_token(path: str | os.PathLike[str]) -> bytes:
    token = _read(path, "--token-file").strip()
    if not token:
        raise CoralError(f"--token-file {path}: empty")
    if b"\n" in token or b"\r" in token:
        raise CoralError(f"--token-file {path}: the token must be one line")
    return token


def is_unix_peer(peer: str) -> bool:
    return peer.startswith("unix:") or peer.startswith("unix-abstract:")


class _BearerTokenInterceptor(grpc.ServerInterceptor):
    """Every RPC that did not come over the Unix socket needs the token.

    The peer is only known inside the call (handler_call_details has no
    peer), so the handler is wrapped and checks before the servicer runs."""

    def __init__(self, token: bytes):
        self._expected = b"Bearer " + token

    def intercept_service(self, continuation: Callable[[Any], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        given = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                break
        ok = hmac.compare_digest(given, self._expected)
        return _guard(handler, ok)


class _StreamLimit(grpc.ServerInterceptor):
    """At most `limit` streaming calls at once; one more is RESOURCE_EXHAUSTED."""

    def __init__(self, limit: int):
        self._limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def intercept_service(self, continuation: Callable[[Any], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler

        def enter(context: grpc.ServicerContext) -> Callable[[], None]:
            if not self._slots.acquire(blocking=False):
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"the agent has {self._limit} streaming calls open (the limit)")
            return self._slots.release
        return _wrapped(handler, enter)


def _guard(handler: Any, token_ok: bool) -> Any:
    def allowed(context: grpc.ServicerContext) -> None:
        if not token_ok and not is_unix_peer(context.peer()):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED)

    return _wrapped(handler, allowed)


def _wrapped(handler: Any, enter: Callable[[grpc.ServicerContext], Callable[[], None] | None]) -> Any:
    """The handler with `enter(context)` run before the servicer (it may abort
    the call); what it returns, if anything, runs when the call has ended."""

    def leave(done: Callable[[], None] | None) -> None:
        if done is not None:
            done()

    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
            done = enter(context)
            try:
                return inner_uu(request, context)
            finally:
                leave(done)
        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        def unary_stream(request: Any, context: grpc.ServicerContext) -> Any:
            done = enter(context)
            try:
                yield from inner_us(request, context)
            finally:
                leave(done)
        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        def stream_unary(requests: Any, context: grpc.ServicerContext) -> Any:
            done = enter(context)
            try:
                return inner_su(requests, context)
            finally:
                leave(done)
        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer)
    inner_ss = handler.stream_stream

    def stream_stream(requests: Any, context: grpc.ServicerContext) -> Any:
        done = enter(context)
        try:
            yield from inner_ss(requests, context)
        finally:
            leave(done)
    return grpc.stream_stream_rpc_method_handler(
        stream_stream, handler.request_deserializer, handler.response_serializer)
