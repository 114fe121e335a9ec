"""The SDK server: a Unix socket scripts connect to. One thread per
connection; a connection that subscribes becomes an event stream written by
the Rust fan-out, and closing it ends the subscription."""

import logging
import os
import socket
import threading

from google.protobuf.message import DecodeError

from ..errors import CoralError, EnvironmentProblem, NotFound
from ..gen.coral.sdk.v1 import sdk_pb2 as pb
from .framing import FrameError, FrameReader, frame
from .handlers import ExecutionContext, Handlers
from .subscriptions import Subscriptions

log = logging.getLogger(__name__)


def _error(request_id: int, code: str, message: str) -> pb.Response:
    return pb.Response(id=request_id, error=pb.Error(code=code, message=message))


def _code(e: Exception) -> str:
    if isinstance(e, NotFound):
        return "NOT_FOUND"
    if isinstance(e, EnvironmentProblem):
        return "UNAVAILABLE"
    if isinstance(e, CoralError):
        return "INVALID_ARGUMENT"
    return "INTERNAL"


class SdkServer:
    def __init__(self, socket_path: str, handlers: Handlers, subscriptions: Subscriptions):
        self.socket_path = socket_path
        self.handlers, self.subscriptions = handlers, subscriptions
        self._contexts: dict[str, ExecutionContext] = {}
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def register(self, token: str, ctx: ExecutionContext) -> None:
        with self._lock:
            self._contexts[token] = ctx

    def unregister(self, token: str) -> None:
        with self._lock:
            self._contexts.pop(token, None)

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        listener.listen(64)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name="coral-sdk-accept", daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        if self._listener is not None:
            # close() alone does not wake a thread blocked in accept(); shutdown() does.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
            self._acceptor.join(timeout=5)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="coral-sdk-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._conversation(conn)
        except (ConnectionError, OSError):
            pass  # the script went away
        except Exception:  # noqa: BLE001 - one bad connection must not take the agent down
            log.exception("SDK connection failed")
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def _conversation(self, conn: socket.socket) -> None:
        reader = FrameReader(conn)
        ctx: ExecutionContext | None = None
        while True:
            try:
                body = reader.read()
            except FrameError as e:
                conn.sendall(frame(_error(0, "INVALID_ARGUMENT", f"malformed frame: {e}")))
                return
            if body is None:
                return
            try:
                req = pb.Request.FromString(body)
            except DecodeError:
                conn.sendall(frame(_error(0, "INVALID_ARGUMENT", "malformed frame: not a coral.sdk.v1.Request")))
                return
            call = req.WhichOneof("call")
            if call == "hello":
                with self._lock:
                    ctx = self._contexts.get(req.hello.token)
                if ctx is None:
                    conn.sendall(frame(_error(req.id, "PERMISSION_DENIED", "unknown token")))
                    return
                reply = self.handlers.hello(ctx)
            elif ctx is None:
                conn.sendall(frame(_error(req.id, "PERMISSION_DENIED", "the first request must be hello")))
                return
            elif call == "subscribe":
                self._stream(conn, req, ctx)
                return
            else:
                try:
                    reply = self.handlers.handle(ctx, req)
                except Exception as e:  # noqa: BLE001 - every failure is an Error reply
                    if not isinstance(e, CoralError):
                        log.exception("SDK request %s failed", call)
                    reply = _error(req.id, _code(e), str(e))
            reply.id = req.id
            conn.sendall(frame(reply))

    def _stream(self, conn: socket.socket, req: pb.Request, ctx: ExecutionContext) -> None:
        try:
            sid, probe = self.subscriptions.open(req.subscribe, ctx.target)
        except Exception as e:  # noqa: BLE001 - the script gets the reason
            if not isinstance(e, CoralError):
                log.exception("subscribe failed")
            conn.sendall(frame(_error(req.id, _code(e), str(e))))
            return
        try:
            plan = probe.plan
            conn.sendall(frame(pb.Response(id=req.id, subscribe=pb.SubscribeReply(
                subscription_id=sid, function_names=plan.names, nargs=plan.nargs,
                has_return=req.subscribe.kind != pb.PROBE_KIND_TRACEPOINT and not req.subscribe.config.no_return))))
            self.subscriptions.stream(sid, conn.fileno())
            # From here the Rust fan-out writes; we only wait for the script
            # to hang up (iterator closed, script ended) to detach.
            while conn.recv(4096):
                pass
        finally:
            self.subscriptions.close(sid)
