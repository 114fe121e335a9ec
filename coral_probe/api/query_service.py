"""QueryService: an operator's read-only questions to a running agent.

ExecuteQuery is `coral query sql` (and the MCP tool coral_query_sql) while the
agent holds the DuckDB file. The guardrails are db.query's: one SELECT,
naming only the agent's data tables unqualified and a few table functions
(query_scope.check_statement), on a cursor whose store refuses file and
network access; a row cap, a deadline and a reply size cap. Unlike a
script, an operator sees every row: no scope views. ListFunctions is what
a probe could attach to in a binary or a process (function_lookup).

Over TCP a client names only targets the agent's --allow-probe rules allow
(client_targets.py). Errors are one line: CoralError → INVALID_ARGUMENT,
NotFound → NOT_FOUND, a scope or target refusal → PERMISSION_DENIED, a cap
→ RESOURCE_EXHAUSTED, the deadline → DEADLINE_EXCEEDED, a closing store →
UNAVAILABLE."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from ..agent.policy import ProbePolicy
from ..errors import CoralError
from ..queries import read_capped
from .status import abort
from ..query_wire import encode_row
from . import pb, pb_grpc
from .client_targets import check_client_target

DEFAULT_ROWS = 1000
MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
# Under gRPC's default 4 MiB a client accepts, with room for the columns.
REPLY_CAP_BYTES = 3 << 20
DEFAULT_FUNCTIONS = 1000
# A reply lists at most this many functions, and at most REPLY_CAP_BYTES of them.
MAX_FUNCTIONS = 10_000

T = TypeVar("T")


def list_functions(request: pb.ListFunctionsRequest, policy: ProbePolicy,
                   context: grpc.ServicerContext) -> pb.ListFunctionsResponse:
    from ..function_lookup import list_functions as lookup
    from ..targets import resolve_binary, resolve_pid

    if request.pid < 0:
        raise CoralError(f"invalid pid {request.pid}")
    if request.limit > MAX_FUNCTIONS:
        raise CoralError(f"limit {request.limit}: at most {MAX_FUNCTIONS}")
    pid = request.pid or None
    check_client_target(policy, context, binary=request.binary, pid=pid)
    if request.binary:
        target = resolve_binary(request.binary, pid)
    elif pid is not None:
        target = resolve_pid(pid)
    else:
        raise CoralError("give a binary or a pid")
    found = lookup(target, request.pattern or "*")
    functions: list[pb.FunctionInfo] = []
    size = 0
    for f in found[:request.limit or DEFAULT_FUNCTIONS]:
        info = pb.FunctionInfo(name=f.function.name, file=f.path, address=f.function.address, size=f.function.size)
        size += info.ByteSize() + 8  # with its tag and length
        if size > REPLY_CAP_BYTES:  # C++ names can be long
            break
        functions.append(info)
    return pb.ListFunctionsResponse(functions=functions, truncated=len(functions) < len(found))


class QueryServicer(pb_grpc.QueryServiceServicer):
    def __init__(self, store: Any, policy: ProbePolicy):  # a coral_probe.store.Store; the agent's --allow-probe
        self.store, self.policy = store, policy

    def ExecuteQuery(self, request: pb.ExecuteQueryRequest, context: grpc.ServicerContext) -> pb.ExecuteQueryResponse:
        def run() -> pb.ExecuteQueryResponse:
            if request.max_rows > MAX_ROWS:
                raise CoralError(f"max_rows {request.max_rows}: at most {MAX_ROWS}")
            timeout_s = min(request.timeout_ms / 1000 if request.timeout_ms else DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
            with self.store.cursor() as cur:
                # An operator sees every row: no scope.
                read = read_capped(
                    cur, request.sql, scope=None, encode=lambda _columns, row: encode_row(row),
                    max_rows=request.max_rows or DEFAULT_ROWS, timeout_s=timeout_s, reply_cap=REPLY_CAP_BYTES,
                    who="a query through the agent")
            return pb.ExecuteQueryResponse(columns=read.columns, column_types=read.types, rows_json=read.rows_json,
                                           row_count=read.row_count, truncated=read.truncated)
        return _answer(run, context)

    def ListFunctions(self, request: pb.ListFunctionsRequest,
                      context: grpc.ServicerContext) -> pb.ListFunctionsResponse:
        return _answer(lambda: list_functions(request, self.policy, context), context)


def _answer(run: Callable[[], T], context: grpc.ServicerContext) -> T:
    try:
        return run()
    except CoralError as e:
        abort(context, e)
