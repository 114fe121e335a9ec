"""What a person sees while probing: a live rich table, or JSON lines with a
summary on stderr. Views get whole batches, never single events."""

import os
import sys
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .accounting import Accounting
from .durations import format_ns
from .terminal import safe_text


@dataclass
class Snapshot:
    elapsed_s: float
    events: int
    rate: float
    counters: dict[str, int]
    stats: dict


@dataclass(frozen=True)
class SlowCall:
    duration_ns: int
    seen_at: float
    function: str
    pid: int
    tid: int
    args: tuple[int, ...]


class SlowestRecent:
    """The slowest calls of the last `window_s` seconds (numpy top-k per batch)."""

    def __init__(self, names: list[str], nargs: int, keep: int = 5, window_s: float = 10.0):
        self.names, self.nargs, self.keep, self.window_s = names, nargs, keep, window_s
        self.calls: deque[SlowCall] = deque()

    def add(self, cols: dict) -> None:
        durations = np.where(cols["has_return"], cols["duration_ns"], -1)
        if not len(durations) or durations.max() < 0:
            return
        k = min(self.keep, len(durations))
        now = time.monotonic()
        for i in np.argpartition(-durations, k - 1)[:k]:
            if durations[i] >= 0:
                self.calls.append(SlowCall(int(durations[i]), now, self.names[cols["probe_id"][i]],
                                           int(cols["pid"][i]), int(cols["tid"][i]),
                                           tuple(int(cols[f"arg{a}"][i]) for a in range(self.nargs))))

    def top(self) -> list[SlowCall]:
        horizon = time.monotonic() - self.window_s
        while self.calls and self.calls[0].seen_at < horizon:
            self.calls.popleft()
        return sorted(self.calls, key=lambda c: -c.duration_ns)[: self.keep]


def summary_line(snapshot: Snapshot, accounting: Accounting, stored: str) -> str:
    s = snapshot.stats
    parts = [f"{snapshot.events:,} events in {snapshot.elapsed_s:.1f}s ({snapshot.rate:,.0f}/s)",
             *accounting.summary_parts()]
    if s.get("with_latency"):
        parts.append("latency p50 {} p90 {} p99 {} max {}".format(
            *(format_ns(s[k]) for k in ("p50_ns", "p90_ns", "p99_ns", "max_ns"))))
    return "coral: " + ", ".join(parts) + f"; {stored}"


def _write_all(out, data: bytes) -> None:
    """BufferedWriter.write may write less than it was given and say so only
    in its return value: a signal (Ctrl-C) landing while a write to a full
    pipe blocks ends it short. Ignoring that count lost the rest of the
    batch and cut a JSON line in two."""
    view = memoryview(data)
    while view:
        view = view[out.write(view):]


class JsonlView:
    def __init__(self, out=None):
        self.out = out or sys.stdout.buffer
        self.written = 0
        self.closed_after: int | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def on_batch(self, batch, cols: dict) -> None:
        if self.closed_after is not None:
            return
        try:
            _write_all(self.out, batch.jsonl())
            self.out.flush()
        except BrokenPipeError:
            # The reader went away (`| head`, a Ctrl-C that reached it): the
            # session goes on, stored; later writes and the exit-time flush
            # go nowhere instead of failing.
            self.closed_after = self.written
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
        self.written += len(batch)

    def tick(self, snapshot: Snapshot) -> None:
        pass

    def finish(self, snapshot: Snapshot, accounting: Accounting, stored: str) -> None:
        if self.closed_after is not None:
            print(f"coral: stdout was closed after {self.closed_after:,} events; the rest are only in the "
                  "database", file=sys.stderr)
        print(summary_line(snapshot, accounting, stored), file=sys.stderr, flush=True)


class TableView:
    def __init__(self, title: str, names: list[str], nargs: int, notes: list[str]):
        self.title, self.notes = title, notes
        self.slowest = SlowestRecent(names, nargs)
        self.console = Console()
        self.live = Live(self._render(None), console=self.console, refresh_per_second=4,
                         transient=False, auto_refresh=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        self.live.__exit__(*exc)
        return False

    def on_batch(self, batch, cols: dict) -> None:
        self.slowest.add(cols)

    def tick(self, snapshot: Snapshot) -> None:
        self.live.update(self._render(snapshot), refresh=True)

    def finish(self, snapshot: Snapshot, accounting: Accounting, stored: str) -> None:
        self.live.update(self._render(snapshot, final=True), refresh=True)
        self.live.stop()
        self.console.print()
        self.console.print(summary_line(snapshot, accounting, stored), highlight=False, soft_wrap=True)

    def _render(self, snap: Snapshot | None, final: bool = False):
        # Function names and paths come from the probed binary: text, never markup.
        stats = Table(title=Text(safe_text(self.title)), title_justify="left", show_header=True, box=None)
        for column in ("events", "rate/s", "lost", "p50", "p90", "p99", "max"):
            stats.add_column(column, justify="right")
        if snap is not None:
            s = snap.stats
            lost = Accounting.of(snap.counters, snap.events).lost
            stats.add_row(f"{snap.events:,}", f"{snap.rate:,.0f}", f"{lost:,}",
                          *(format_ns(s.get(k)) for k in ("p50_ns", "p90_ns", "p99_ns", "max_ns")))
        slow = Table(title="slowest recent calls", title_justify="left", box=None)
        for column in ("duration", "function", "pid", "tid", "args"):
            slow.add_column(column)
        for call in self.slowest.top():
            slow.add_row(format_ns(call.duration_ns), Text(safe_text(call.function)), str(call.pid), str(call.tid),
                         ", ".join(map(str, call.args)))
        parts = [stats, slow] + [Text(safe_text(note), style="dim") for note in self.notes]
        if not final:
            parts.append("[dim]Ctrl-C to detach[/dim]")
        return Group(*parts)
