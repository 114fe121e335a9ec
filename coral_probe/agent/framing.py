"""Length-delimited protobuf frames on a stream socket.

The varint is written by hand: the protobuf package keeps its varint codec
in a private module (google.protobuf.internal), not a public API."""

import socket

# What the agent may send back (a query reply is capped below this); the
# agent reads scripts' frames with the smaller limits of server.py.
MAX_FRAME = 16 << 20
RECV_BYTES = 65536


class FrameError(Exception):
    """The peer sent bytes that are not a frame."""


class FrameTooLarge(FrameError):
    """A frame declared a length past the reader's limit (refused before its bytes are buffered)."""

    def __init__(self, length: int, limit: int, header_bytes: int):
        super().__init__(f"frame of {length} bytes exceeds the {limit} byte limit")
        self.length, self.header_bytes = length, header_bytes


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data, pos: int = 0, max_bytes: int = 10) -> tuple[int, int] | None:
    """(value, position after it) of the varint at `pos`; None when `data` ends inside it."""
    value = shift = 0
    end = pos + max_bytes
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if pos == end:
            raise FrameError("not a valid varint")
    return None


def frame(message) -> bytes:
    body = message.SerializeToString()
    return encode_varint(len(body)) + body


class FrameBuffer:
    """Received bytes cut into frames. A frame's length is checked against
    `limit` as soon as its varint is complete, so the buffer never holds more
    than one frame under the limit plus one receive."""

    def __init__(self, limit: int, data: bytes = b""):
        self.limit = limit
        self.buf = bytearray(data)

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next(self) -> bytes | None:
        """The next whole frame, or None until more bytes arrive."""
        header = decode_varint(self.buf, max_bytes=5)  # frame lengths are below 2**35
        if header is None:
            return None
        length, pos = header
        if length > self.limit:
            raise FrameTooLarge(length, self.limit, pos)
        if len(self.buf) - pos < length:
            return None
        body = bytes(self.buf[pos:pos + length])
        del self.buf[:pos + length]
        return body


class FrameReader:
    """Reads whole frames from a blocking socket; None at a clean end of stream."""

    def __init__(self, sock: socket.socket, limit: int = MAX_FRAME, received: bytes = b""):
        self.sock = sock
        self.frames = FrameBuffer(limit, received)

    def read(self) -> bytes | None:
        while True:
            body = self.frames.next()
            if body is not None:
                return body
            chunk = self.sock.recv(RECV_BYTES)
            if not chunk:
                if self.frames.buf:
                    raise FrameError("connection closed in the middle of a frame")
                return None
            self.frames.feed(chunk)

    def read_available(self) -> bytes | None:
        """The next frame if it is already here (buffered, or in the socket's
        queue), without waiting; None if it is not whole yet or the stream
        ended (read() then waits for it, or says so). Raises as read() would
        before taking the frame: read() raises the same again."""
        body = self.frames.next()
        if body is not None:
            return body
        try:
            chunk = self.sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        if not chunk:
            return None
        self.frames.feed(chunk)
        return self.frames.next()

    def skip(self, refused: FrameTooLarge, keep: int = 32) -> bytes:
        """Reads past a refused frame, holding only its first `keep` bytes (to
        name the request in the refusal): the connection goes on after it."""
        del self.frames.buf[:refused.header_bytes]
        left, head = refused.length, bytearray()
        while True:
            taken = bytes(self.frames.buf[:left])
            del self.frames.buf[:left]
            head += taken[:keep - len(head)]
            left -= len(taken)
            if not left:
                return bytes(head)
            chunk = self.sock.recv(RECV_BYTES)
            if not chunk:
                raise FrameError("connection closed in the middle of a frame")
            self.frames.feed(chunk)
