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
