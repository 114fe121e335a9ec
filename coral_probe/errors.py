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
