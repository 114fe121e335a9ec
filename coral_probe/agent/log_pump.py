"""A script's stdout and stderr: read in bounded chunks (never a whole line
at once: a script may write gigabytes without a newline), cut into lines,
stored and echoed within limits. What is past a limit is counted for
`script_executions`, never held in memory, and the next stored line carries
how many lines were dropped just before it (`script_logs.lost`): a log
reader sees where lines are missing, not only how many."""

import os
import select
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
LINES_PER_S = 200  # per execution, both streams together (`coral agent start --log-lines-per-second`)
BURST_S = 10  # a quiet script may print this many seconds' worth at once
MAX_LOG_BYTES = 16 << 20  # stored per execution; later lines are dropped (counted)
# Stored together: DuckDB's cost is per INSERT (200-line batches stored ~50k
# lines/s, 5,000-line ones ~150k); a quiet pipe or FLUSH_S stores sooner.
FLUSH_LINES, FLUSH_S = 5000, 0.5


@dataclass
class LogCounts:
    """The columns of `script_executions` these limits fill."""

    log_lines_truncated: int = 0
    log_lines_dropped: int = 0
    log_bytes_dropped: int = 0


class LogBudget:
    """One execution's allowance, shared by its two streams."""

    def __init__(self, lines_per_s: float = LINES_PER_S):
        self.counts = LogCounts()
        self._rate = TokenBucket(lines_per_s, lines_per_s * BURST_S)
        self._bytes_left = MAX_LOG_BYTES
        self._lost_since_kept = 0  # dropped since the last admitted line, either stream
        self._lock = threading.Lock()

    def admit(self, kept: int, cut: int) -> int | None:
        """A line of `kept` bytes (and `cut` more past the line cap): None to
        drop it, else the lines dropped just before it (its `lost`)."""
        with self._lock:
            if cut:
                self.counts.log_lines_truncated += 1
            if kept > self._bytes_left or not self._rate.take():
                self._drop(1, kept + cut)
                return None
            self._bytes_left -= kept
            self.counts.log_bytes_dropped += cut
            lost, self._lost_since_kept = self._lost_since_kept, 0
            return lost

    def drop(self, lines: int, size: int) -> None:
        """Lines that will not be stored (past a limit, or the store failed)."""
        with self._lock:
            self._drop(lines, size)

    def _drop(self, lines: int, size: int) -> None:
        self.counts.log_lines_dropped += lines
        self.counts.log_bytes_dropped += size
        self._lost_since_kept += lines


def _chunks(source: BinaryIO):
    """The pipe's bytes as they come, and b"" each time it stays quiet for
    FLUSH_S: lines a script printed just before going quiet are stored then,
    not at its next line (a daemon may print once an hour)."""
    fd = source.fileno()
    quiet = select.poll()
    quiet.register(fd, select.POLLIN | select.POLLHUP)
    while True:
        if not quiet.poll(FLUSH_S * 1000):
            yield b""
            continue
        chunk = os.read(fd, READ_BYTES)  # not source.read1: its buffer would hide bytes from poll
        if not chunk:
            return
        yield chunk


def _lines(source: BinaryIO):
    """(first MAX_LINE_BYTES of a line, bytes cut from it) for each line of
    `source`; None when it has been quiet for FLUSH_S."""
    line, cut = bytearray(), 0
    for chunk in _chunks(source):
        if not chunk:
            yield None
            continue
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
    pending: list[tuple[datetime, str, str, int]] = []
    last_flush = time.monotonic()
    storing = True
    for got in _lines(source):
        if got is not None:
            raw, cut = got
            lost = budget.admit(len(raw), cut)
            if lost is None:
                continue
            line = raw.decode(errors="replace")
            if echo:
                print(safe_text(line), file=sink, flush=True)
            pending.append((datetime.now(timezone.utc), stream, line, lost))
        if not pending:
            continue
        if got is None or len(pending) >= FLUSH_LINES or time.monotonic() - last_flush > FLUSH_S:
            storing = _store(store, execution_id, pending, budget) if storing else _dropped(pending, budget)
            pending, last_flush = [], time.monotonic()
    if storing:
        _store(store, execution_id, pending, budget)
    else:
        _dropped(pending, budget)


def _store(store, execution_id: str, lines: list, budget: LogBudget) -> bool:
    """False once the store has failed: the executor reports that and stops the
    script; the pipe is still drained so the script never blocks on it."""
    try:
        store.append_logs(execution_id, lines)
        return True
    except StoreFailed:
        return _dropped(lines, budget)


def _dropped(lines: list, budget: LogBudget) -> bool:
    """Admitted lines the failed store did not take: counted like any drop."""
    budget.drop(len(lines), sum(len(line[2].encode()) for line in lines))
    return False
