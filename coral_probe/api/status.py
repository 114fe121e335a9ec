"""A CoralError as a gRPC status: one table for every servicer of the
agent (the SDK socket has its own codes in agent/server.py)."""

from __future__ import annotations

import grpc

from ..errors import (CoralError, EnvironmentProblem, NotFound, PermissionDenied, ResourceExhausted, StoreFailed,
                      TimedOut, first_line)

_CODES: tuple[tuple[type[CoralError], grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TimedOut, grpc.StatusCode.DEADLINE_EXCEEDED),
    (StoreFailed, grpc.StatusCode.UNAVAILABLE),
    (EnvironmentProblem, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_code(error: CoralError, default: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> grpc.StatusCode:
    """The code of the error's kind; `default` for a plain CoralError."""
    return next((code for kind, code in _CODES if isinstance(error, kind)), default)


def abort(context: grpc.ServicerContext, error: CoralError,
          default: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> None:
    """Ends the call with the error's code and first line (raises)."""
    context.abort(status_code(error, default), first_line(error))
