"""Length-delimited protobuf frames on a stream socket.

The varint is written by hand: the protobuf package keeps its varint codec
in a private module (google.protobuf.internal), not a public API."""

import socket

MAX_FRAME = 16 << 20


class FrameError(Exception):
    """The peer sent bytes that are not a frame."""


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


def frame(message) -> bytes:
    body = message.SerializeToString()
    return encode_varint(len(body)) + body


class FrameReader:
    """Reads whole frames from a socket; None at a clean end of stream."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read(self) -> bytes | None:
        while True:
            length, shift, pos = 0, 0, 0
            complete = False
            while pos < len(self.buf):
                byte = self.buf[pos]
                length |= (byte & 0x7F) << shift
                pos += 1
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 35:
                    raise FrameError("frame length is not a valid varint")
            if complete:
                if length > MAX_FRAME:
                    raise FrameError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
                if len(self.buf) - pos >= length:
                    body = bytes(self.buf[pos:pos + length])
                    del self.buf[:pos + length]
                    return body
            if not self._fill():
                if self.buf:
                    raise FrameError("connection closed in the middle of a frame")
                return None
