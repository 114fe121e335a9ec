"""A script's stdout and stderr: read in bounded chunks (never a whole line
at once: a script may write gigabytes without a newline), cut into lines,
stored and echoed within limits. What is past a limit is counted for
`script_executions`, never held in memory."""

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO, TextIO

from ..errors import StoreFailed
from ..terminal import safe_text
from .rate import TokenBucket

READ_BYTES = 65536
MAX_LINE_BYTES = 16 << 10  # a longer line is cut here (counted as truncated)
LINES_PER_S, LINE_BURST = 200, 2000  # per execution, both streams together
MAX_LOG_BYTES = 16 << 20  # stored per execution; later lines are dropped (counted)
FLUSH_LINES, FLUSH_S = 200, 0.5


@dataclass
class LogCounts:
    """The columns of `script_executions` these limits fill."""

    log_lines_truncated: int = 0
    log_lines_dropped: int = 0
    log_bytes_dropped: int = 0


class LogBudget:
    """One execution's allowance, shared by its two streams."""

    def __init__(self):
        self.counts = LogCounts()
        self._rate = TokenBucket(LINES_PER_S, LINE_BURST)
        self._bytes_left = MAX_LOG_BYTES
        self._lock = threading.Lock()

    def admit(self, kept: int, cut: int) -> bool:
        """A line of `kept` bytes (and `cut` more past the line cap): store it or drop it."""
        with self._lock:
            if cut:
                self.counts.log_lines_truncated += 1
            if kept > self._bytes_left or not self._rate.take():
                self.counts.log_lines_dropped += 1
                self.counts.log_bytes_dropped += kept + cut
                return False
            self._bytes_left -= kept
            self.counts.log_bytes_dropped += cut
            return True


def _lines(source: BinaryIO):
    """(first MAX_LINE_BYTES of a line, bytes cut from it) for each line of `source`."""
    line, cut = bytearray(), 0
    for chunk in iter(lambda: source.read1(READ_BYTES), b""):
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:len(chunk) if end < 0 else end]
            room = MAX_LINE_BYTES - len(line)
            line += piece[:room]
            cut += max(0, len(piece) - room)
            if end < 0:
                break
            yield bytes(line), cut
            line, cut, start = bytearray(), 0, end + 1
    if line or cut:
        yield bytes(line), cut


def pump(source: BinaryIO, stream: str, execution_id: str, store, budget: LogBudget, sink: TextIO | None) -> None:
    """Until `source` ends: each admitted line is stored and, with a `sink`, shown."""
    echo = sink is not None
    pending: list[tuple[datetime, str, str]] = []
    last_flush = time.monotonic()
    storing = True
    for raw, cut in _lines(source):
        if not budget.admit(len(raw), cut):
            continue
        line = raw.decode(errors="replace")
        if echo:
            print(safe_text(line), file=sink, flush=True)
        pending.append((datetime.now(timezone.utc), stream, line))
        if len(pending) >= FLUSH_LINES or time.monotonic() - last_flush > FLUSH_S:
            storing = storing and _store(store, execution_id, pending)
            pending, last_flush = [], time.monotonic()
    if storing:
        _store(store, execution_id, pending)


def _store(store, execution_id: str, lines: list) -> bool:
    """False once the store has failed: the executor reports that and stops the
    script; the pipe is still drained so the script never blocks on it."""
    try:
        store.append_logs(execution_id, lines)
        return True
    except StoreFailed:
        return False
