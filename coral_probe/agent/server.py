"""The SDK server: a Unix socket scripts connect to. A connection that
subscribes becomes an event stream written by the Rust fan-out, and closing
it ends the subscription.

Until its Hello, a connection is served by the accept thread alone, in a
selector: that phase costs no thread, buffers at most MAX_HELLO_FRAME and
lasts at most HANDSHAKE_TIMEOUT_S. A connection gets a thread of its own only
after a Hello with a known token, under its script's connection cap; threads
are thus bounded by scripts x MAX_CONNECTIONS_PER_SCRIPT, and everything
open by MAX_CONNECTIONS. (A selector for the whole conversation would bound
threads too, but requests block on DuckDB and on attaching probes: they need
threads anyway, and the per-script cap is what bounds them.)"""

import logging
import os
import select
import selectors
import socket
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from ..errors import CoralError, EnvironmentProblem, NotFound, PermissionDenied, ResourceExhausted, StoreFailed
from ..gen.coral.sdk.v1 import sdk_pb2 as pb
from .framing import RECV_BYTES, FrameBuffer, FrameError, FrameReader, FrameTooLarge, decode_varint, frame
from .handlers import ExecutionContext, Handlers
from .socket_path import claim as claim_socket_path
from .subscriptions import Subscriptions

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 128  # open at once, before and after Hello
MAX_CONNECTIONS_PER_SCRIPT = 16  # after Hello: the control connection and every allowed stream, with room
MAX_HELLO_FRAME = 64 << 10  # a Hello is tiny; x MAX_CONNECTIONS this stays at 8 MiB
MAX_REQUEST_FRAME = 1 << 20  # SQL text and an emit (64 KiB of data) fit; a larger request is read past, refused
# Group commit: emits a script sent without waiting for each reply are stored
# in one INSERT (~1 ms of DuckDB per statement, a few us per row), at most
# this many or this many bytes of requests at a time.
MAX_EMIT_GROUP = 4096
MAX_EMIT_GROUP_BYTES = 4 << 20
EMIT_WRITERS = 4  # threads storing groups (one per connection at a time); DuckDB takes one INSERT at a time
HANDSHAKE_TIMEOUT_S = 5.0
# accept() failing (out of descriptors, EMFILE; out of memory): the listener
# rests this long before it is tried again; waiting connections stay in the
# backlog meanwhile.
ACCEPT_BACKOFF_S = 0.1
STOP_JOIN_S = 10.0


def _error(request_id: int, code: str, message: str) -> pb.Response:
    return pb.Response(id=request_id, error=pb.Error(code=code, message=message))


def _code(e: Exception) -> str:
    if isinstance(e, NotFound):
        return "NOT_FOUND"
    if isinstance(e, PermissionDenied):
        return "PERMISSION_DENIED"
    if isinstance(e, ResourceExhausted):
        return "RESOURCE_EXHAUSTED"
    if isinstance(e, (StoreFailed, EnvironmentProblem)):
        return "UNAVAILABLE"
    if isinstance(e, CoralError):
        return "INVALID_ARGUMENT"
    return "INTERNAL"


def _try_send(conn: socket.socket, message: pb.Response) -> None:
    """A last word to a connection about to be closed; it may be gone already."""
    try:
        conn.send(frame(message))
    except OSError:
        pass


def _peek_request(head: bytes) -> tuple[int, str | None]:
    """The id and call of a request from its first bytes (encoders write the
    id, field 1, first), so that a refused frame is answered like a request."""
    request_id = 0
    try:
        tag, pos = decode_varint(head) or (0, 0)
        if tag == 0x08:
            request_id, pos = decode_varint(head, pos) or (0, pos)
            tag, pos = decode_varint(head, pos) or (0, pos)
    except FrameError:
        return 0, None
    field = pb.Request.DESCRIPTOR.fields_by_number.get(tag >> 3)
    return request_id, field.name if field else None


@dataclass
class _Storing:
    """A group of emits an emit writer is storing: the requests, their results to come."""
    requests: list[pb.Request]
    future: Future


def _answer(conn: socket.socket, storing: _Storing | None) -> None:
    """Waits for the group to be stored, then answers each of its requests
    in one write: an id reaches the script only once its event is committed."""
    if storing is None:
        return
    replies = []
    stored = pb.Response(emit=pb.EmitReply())  # one message refilled: a few us less per reply
    for req, result in zip(storing.requests, storing.future.result()):
        if isinstance(result, Exception):
            replies.append(frame(_error(req.id, _code(result), str(result))))
        else:
            stored.id, stored.emit.id = req.id, result
            replies.append(frame(stored))
    conn.sendall(b"".join(replies))


def _wait_for_more(conn: socket.socket, storing: _Storing, stored_r: socket.socket,
                   stored_w: socket.socket) -> None:
    """Waits until the script sends more or the group is stored."""
    def poke(_future: Future) -> None:
        try:
            stored_w.send(b"\0", socket.MSG_DONTWAIT)
        except OSError:  # closed (the connection ended), or pokes already pending
            pass
    storing.future.add_done_callback(poke)
    readable, _, _ = select.select([conn, stored_r], [], [])
    if stored_r in readable:
        try:
            stored_r.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass


class _EmitGroup:
    """Emit requests a connection sent one after another, gathered from what
    is already received (never waiting for more), up to the group limits."""

    def __init__(self, requests: list[pb.Request], size: int):
        self.requests, self.size = requests, size

    def gather(self, reader: FrameReader) -> bytes | None:
        """Adds the emits already here; returns the request read past them, if any."""
        while len(self.requests) < MAX_EMIT_GROUP and self.size < MAX_EMIT_GROUP_BYTES:
            try:
                body = reader.read_available()
            except FrameError:
                return None  # read() meets it again, and answers it
            if body is None:
                return None
            try:
                req = pb.Request.FromString(body)
            except DecodeError:
                return body
            if req.WhichOneof("call") != "emit":
                return body
            self.requests.append(req)
            self.size += len(body)
        return None


@dataclass
class _Handshake:
    conn: socket.socket
    frames: FrameBuffer
    deadline: float


class SdkServer:
    def __init__(self, socket_path: str, handlers: Handlers, subscriptions: Subscriptions):
        self.socket_path = socket_path
        self.handlers, self.subscriptions = handlers, subscriptions
        self._contexts: dict[str, ExecutionContext] = {}
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()  # past Hello, each with its thread
        self._threads: set[threading.Thread] = set()
        self._per_script: Counter[str] = Counter()  # connections past Hello, by token
        self._handshakes = 0
        self._starved = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # Store groups of emits while their connections read the next ones; a
        # connection has at most one group with them at a time.
        self._emit_writers = ThreadPoolExecutor(EMIT_WRITERS, thread_name_prefix="coral-sdk-emit")

    def register(self, token: str, ctx: ExecutionContext) -> None:
        with self._lock:
            self._contexts[token] = ctx

    def unregister(self, token: str) -> None:
        with self._lock:
            self._contexts.pop(token, None)

    def start(self) -> None:
        claim_socket_path(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()  # stop() wakes the accept thread's select
        self._acceptor = threading.Thread(target=self._accept_and_greet, name="coral-sdk-accept", daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        bound = self._listener is not None  # else the path is not ours to remove
        if self._listener is not None:
            self._stopping.set()
            self._wake_w.send(b"\0")
            self._acceptor.join(timeout=5)
            for s in (self._listener, self._wake_r, self._wake_w):
                s.close()
            self._listener = None
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # Nothing may still use the store or a probe once the agent stops; a
        # query in flight would hold its thread up to its own timeout.
        deadline = time.monotonic() + STOP_JOIN_S
        for t in threads:
            while t.is_alive() and time.monotonic() < deadline:
                self.handlers.interrupt()
                t.join(0.05)
        self._emit_writers.shutdown()  # the groups of emits being stored: before the store closes
        if bound:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass

    def _accept_and_greet(self) -> None:
        """The accept thread: accepts, and reads every connection up to its Hello."""
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        resting_until: float | None = None
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if resting_until is not None and now >= resting_until:
                    sel.register(self._listener, selectors.EVENT_READ)
                    resting_until = None
                wake_at = [key.data.deadline for key in sel.get_map().values() if isinstance(key.data, _Handshake)]
                if resting_until is not None:
                    wake_at.append(resting_until)
                for key, _ in sel.select(max(0.0, min(wake_at) - now) if wake_at else None):
                    if key.fileobj is self._listener:
                        if not self._accept_one(sel):
                            sel.unregister(self._listener)
                            resting_until = time.monotonic() + ACCEPT_BACKOFF_S
                    elif isinstance(key.data, _Handshake):
                        try:
                            self._read_hello(sel, key.data)
                        except Exception:  # noqa: BLE001 - one bad connection must not stop the accepting
                            log.exception("SDK handshake failed")
                            if key.data.conn.fileno() != -1 and key.fileobj in sel.get_map():
                                self._refuse(sel, key.data, "INTERNAL", "the agent failed this connection")
                now = time.monotonic()
                for key in list(sel.get_map().values()):
                    if isinstance(key.data, _Handshake) and key.data.deadline <= now:
                        self._refuse(sel, key.data, "DEADLINE_EXCEEDED",
                                     f"no Hello within {HANDSHAKE_TIMEOUT_S:g}s of connecting")
        finally:
            for key in list(sel.get_map().values()):
                if isinstance(key.data, _Handshake):
                    self._end_handshake(sel, key.data)
                    key.data.conn.close()
            sel.close()

    def _accept_one(self, sel: selectors.BaseSelector) -> bool:
        """False when accept() is out of a resource: the caller rests the listener."""
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return True
        except OSError as e:
            if not self._starved:  # once per shortage: a script can cause it at will
                self._starved = True
                log.warning("coral agent: cannot accept SDK connections (%s); retrying until it can",
                            e.strerror or e)
            return False
        self._starved = False
        conn.setblocking(False)
        with self._lock:
            full = self._handshakes + len(self._connections) >= MAX_CONNECTIONS
            if not full:
                self._handshakes += 1
        if full:
            _try_send(conn, _error(0, "RESOURCE_EXHAUSTED",
                                   f"the agent has {MAX_CONNECTIONS} connections open (the limit)"))
            conn.close()
            return True
        sel.register(conn, selectors.EVENT_READ,
                     _Handshake(conn, FrameBuffer(MAX_HELLO_FRAME), time.monotonic() + HANDSHAKE_TIMEOUT_S))
        return True

    def _end_handshake(self, sel: selectors.BaseSelector, h: _Handshake) -> None:
        sel.unregister(h.conn)
        with self._lock:
            self._handshakes -= 1

    def _refuse(self, sel: selectors.BaseSelector, h: _Handshake, code: str, message: str,
                request_id: int = 0) -> None:
        self._end_handshake(sel, h)
        _try_send(h.conn, _error(request_id, code, message))
        h.conn.close()

    def _read_hello(self, sel: selectors.BaseSelector, h: _Handshake) -> None:
        try:
            chunk = h.conn.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._end_handshake(sel, h)
            h.conn.close()
            return
        h.frames.feed(chunk)
        try:
            body = h.frames.next()
        except FrameTooLarge as e:
            return self._refuse(sel, h, "RESOURCE_EXHAUSTED", f"{e} before Hello")
        except FrameError as e:
            return self._refuse(sel, h, "INVALID_ARGUMENT", f"malformed frame: {e}")
        if body is None:
            return
        try:
            req = pb.Request.FromString(body)
        except DecodeError:
            return self._refuse(sel, h, "INVALID_ARGUMENT", "malformed frame: not a coral.sdk.v1.Request")
        if req.WhichOneof("call") != "hello":
            return self._refuse(sel, h, "PERMISSION_DENIED", "the first request must be hello", req.id)
        token = req.hello.token
        with self._lock:
            ctx = self._contexts.get(token)
            full = ctx is not None and self._per_script[token] >= MAX_CONNECTIONS_PER_SCRIPT
        if ctx is None:
            return self._refuse(sel, h, "PERMISSION_DENIED", "unknown token", req.id)
        if full:
            return self._refuse(sel, h, "RESOURCE_EXHAUSTED", f"this script has {MAX_CONNECTIONS_PER_SCRIPT} "
                                "connections to the agent open (the limit)", req.id)
        self._end_handshake(sel, h)
        h.conn.setblocking(True)
        thread = threading.Thread(target=self._serve, args=(h.conn, token, ctx, req, bytes(h.frames.buf)),
                                  name="coral-sdk-conn", daemon=True)
        with self._lock:
            self._per_script[token] += 1
            self._connections.add(h.conn)
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: this connection is refused, the agent goes on
            self._forget(h.conn, token, thread)
            _try_send(h.conn, _error(req.id, "RESOURCE_EXHAUSTED",
                                     "the agent cannot start a thread for this connection"))
            h.conn.close()

    def _forget(self, conn: socket.socket, token: str, thread: threading.Thread) -> None:
        with self._lock:
            self._connections.discard(conn)
            self._threads.discard(thread)
            self._per_script[token] -= 1
            if not self._per_script[token]:
                del self._per_script[token]

    def _serve(self, conn: socket.socket, token: str, ctx: ExecutionContext, hello: pb.Request,
               received: bytes) -> None:
        try:
            reply = self.handlers.hello(ctx)
            reply.id = hello.id
            conn.sendall(frame(reply))
            self._conversation(conn, ctx, FrameReader(conn, MAX_REQUEST_FRAME, received))
        except (ConnectionError, OSError):
            pass  # the script went away
        except Exception:  # noqa: BLE001 - one bad connection must not take the agent down
            log.exception("SDK connection failed")
        finally:
            self._forget(conn, token, threading.current_thread())
            conn.close()

    def _conversation(self, conn: socket.socket, ctx: ExecutionContext, reader: FrameReader) -> None:
        body: bytes | None
        held: bytes | None = None  # a request read past a group of emits: served next
        storing: _Storing | None = None  # the last group of emits, being stored by an emit writer
        # Poked when a group is stored: the script may be waiting for its answers
        # before it sends more, so a stored group is answered without waiting for
        # the next request. (A socket, not an eventfd: a poke after the close is
        # an error, never a write to a reused descriptor number.)
        stored_r, stored_w = socket.socketpair()
        try:
            while True:
                if held is None and storing is not None:
                    try:
                        held = reader.read_available()
                    except FrameError:
                        held = None  # read() below meets it again, and answers it
                    if held is None:
                        _wait_for_more(conn, storing, stored_r, stored_w)
                        if storing.future.done():
                            _answer(conn, storing)
                            storing = None
                if held is not None:
                    body, held = held, None
                else:
                    try:
                        body = reader.read()
                    except FrameTooLarge as e:
                        _answer(conn, storing)
                        storing = None
                        conn.sendall(frame(self._refuse_oversize(ctx, e, reader.skip(e))))
                        continue
                    except FrameError as e:
                        _answer(conn, storing)
                        storing = None
                        conn.sendall(frame(_error(0, "INVALID_ARGUMENT", f"malformed frame: {e}")))
                        return
                if body is None:
                    return
                try:
                    req = pb.Request.FromString(body)
                except DecodeError:
                    _answer(conn, storing)
                    storing = None
                    conn.sendall(frame(_error(0, "INVALID_ARGUMENT", "malformed frame: not a coral.sdk.v1.Request")))
                    return
                call = req.WhichOneof("call")
                if call == "emit":
                    # Group commit, pipelined: this group gathers while the previous one is stored.
                    group = _EmitGroup([req], len(body))
                    held = group.gather(reader)
                    if storing is not None:
                        _answer(conn, storing)
                        storing = None
                        if held is None:
                            held = group.gather(reader)  # what came meanwhile joins
                    storing = _Storing(group.requests, self._emit_writers.submit(self._store_emits, ctx,
                                                                                 group.requests))
                    continue
                # Whatever else a script asks comes after its emits: a query sees them.
                _answer(conn, storing)
                storing = None
                if call == "hello":
                    reply = _error(req.id, "INVALID_ARGUMENT", "hello was already answered on this connection")
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
        finally:
            if storing is not None:
                storing.future.result()  # stored, whether or not its answers can still go
            stored_r.close()
            stored_w.close()

    def _store_emits(self, ctx: ExecutionContext, requests: list[pb.Request]) -> list[str | Exception]:
        """An emit writer: stores a group in one INSERT; for each request, its
        event id or its error. (The connection's own thread sends the answers:
        a script that does not read them holds up only itself.)"""
        try:
            return list(self.handlers.emit_many(ctx, [req.emit for req in requests]))
        except Exception as e:  # noqa: BLE001 - every failure is an Error reply
            log.exception("SDK request emit failed")
            return [e] * len(requests)

    @staticmethod
    def _refuse_oversize(ctx: ExecutionContext, e: FrameTooLarge, head: bytes) -> pb.Response:
        """The answer to a request past MAX_REQUEST_FRAME, read past without buffering it."""
        request_id, call = _peek_request(head)
        message = f"request refused: {e}"
        if call == "emit":
            try:
                ctx.emits.admit(e.length)  # past the emit size: refused and counted like any emit
            except ResourceExhausted as refused:
                message = str(refused)
        return _error(request_id, "RESOURCE_EXHAUSTED", message)

    def _stream(self, conn: socket.socket, req: pb.Request, ctx: ExecutionContext) -> None:
        try:
            sid, probe = self.subscriptions.open(req.subscribe, ctx.target, owner=ctx.execution_id)
        except Exception as e:  # noqa: BLE001 - the script gets the reason
            if not isinstance(e, CoralError):
                log.exception("subscribe failed")
            conn.sendall(frame(_error(req.id, _code(e), str(e))))
            return
        try:
            plan = probe.plan
            conn.sendall(frame(pb.Response(id=req.id, subscribe=pb.SubscribeReply(
                subscription_id=sid, function_names=plan.names, nargs=plan.nargs,
                has_return=req.subscribe.kind not in (pb.PROBE_KIND_TRACEPOINT, pb.PROBE_KIND_USDT)
                and not req.subscribe.config.no_return))))
            self.subscriptions.stream(sid, conn)
            # From here the Rust fan-out writes; we only wait for the script
            # to hang up (iterator closed, script ended) to detach.
            while conn.recv(4096):
                pass
        finally:
            self.subscriptions.close(sid)
