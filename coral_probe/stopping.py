"""SIGTERM stops coral the way Ctrl-C does: detach, drain, account."""

import signal


class StopRequested(Exception):
    """Raised in the main thread when SIGTERM arrives."""


def _raise_stop(signum, frame):
    raise StopRequested()


def raise_on_sigterm():
    """Installs the handler; returns the previous one, for signal.signal to restore."""
    return signal.signal(signal.SIGTERM, _raise_stop)
