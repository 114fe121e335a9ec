"""Ctrl-C, SIGTERM and SIGHUP are requests to stop, never exceptions.

Python's default turns SIGINT into a KeyboardInterrupt raised wherever the
main thread happens to be: inside a DuckDB call (DuckDB checks for signals
and aborts the statement: "Query interrupted"), between taking a batch from
the consumer and writing it, in the middle of writing the session's counts.
Each of those loses events or leaves the session row half-written. Here the
handler only records the request; the loop that owns the data notices it,
then detaches, drains, writes and accounts before it exits."""

import signal
import threading

_REASONS = {signal.SIGINT: "interrupt", signal.SIGTERM: "terminate", signal.SIGHUP: "hangup"}
# Signals that came while coral started (its imports take ~0.5 s), before a
# command took charge: a KeyboardInterrupt raised inside an import surfaces as
# anything (a RuntimeError from a class body), so they wait here instead.
_early: list[int] = []


def _record_early(signum, frame) -> None:
    _early.append(signum)


def defer_while_starting() -> None:
    """Called first thing by the CLI."""
    for signum in _REASONS:
        signal.signal(signum, _record_early)


def allow_interrupts() -> None:
    """For commands that may simply be interrupted (queries, doctor): the
    usual handlers back, and a signal that came during start-up ends now."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if _early:
        raise SystemExit(128 + _early[0])


class StopSignals:
    """While entered, the signals above set `requested` instead of raising."""

    def __init__(self):
        self.requested = threading.Event()
        self.signum: int | None = None
        self.count = 0  # signals received: a second Ctrl-C may mean "now"
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        for signum in _REASONS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        for signum in _early:
            self._on_signal(signum, None)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum, frame) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum
        self.requested.set()

    @property
    def reason(self) -> str | None:
        return None if self.signum is None else _REASONS[signal.Signals(self.signum)]

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by that signal."""
        return 128 + (self.signum or 0)
