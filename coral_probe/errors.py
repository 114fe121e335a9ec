"""The one user-facing error: a single line, printed without a traceback."""


class CoralError(Exception):
    """Bad input or an unusable environment; the message is the whole story."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class EnvironmentProblem(CoralError):
    """The machine cannot do what was asked: points at `coral doctor`."""

    exit_code = 3

    def __init__(self, message: str):
        super().__init__(message, hint="run `coral doctor`")


class NotFound(CoralError):
    """A named thing (function, binary, process, tracepoint) does not exist."""


class PermissionDenied(CoralError):
    """A rule refused (probe policy, query scope); the message names the rule."""


class ResourceExhausted(CoralError):
    """A bound was reached (a reply's size, ...); the message names the bound."""


class StoreFailed(CoralError):
    """The agent's database refused a write; the run that needs it ends."""


class TimedOut(CoralError):
    """A bound on time was reached (a query's deadline, ...)."""


def first_line(e: BaseException) -> str:
    """An exception as one line: its message's first, else its type's name."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__

