"""QueryService: an operator's read-only questions to a running agent.

ExecuteQuery is `coral query sql` (and the MCP tool coral_query_sql) while the
agent holds the DuckDB file. The guardrails are db.query's: one SELECT,
naming only the agent's data tables unqualified and a few table functions
(query_scope.check_statement), on a cursor whose store refuses file and
network access; a row cap, a deadline and a reply size cap. Unlike a
script, an operator sees every row: no scope views.

Errors are one line: CoralError → INVALID_ARGUMENT,
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
from ..query_wire import encode_row
from . import qpb, qpb_grpc
from .status import abort

DEFAULT_ROWS = 1000
MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
# Under gRPC's default 4 MiB a client accepts, with room for the columns.
REPLY_CAP_BYTES = 3 << 20

T = TypeVar("T")


class QueryServicer(qpb_grpc.QueryServiceServicer):
    def __init__(self, store: Any, policy: ProbePolicy):  # a coral_probe.store.Store; the agent's --allow-probe
        self.store, self.policy = store, policy

    def ExecuteQuery(self, request: qpb.ExecuteQueryRequest, context: grpc.ServicerContext) -> qpb.ExecuteQueryResponse:
        def run() -> qpb.ExecuteQueryResponse:
            if request.max_rows > MAX_ROWS:
                raise CoralError(f"max_rows {request.max_rows}: at most {MAX_ROWS}")
            timeout_s = min(request.timeout_ms / 1000 if request.timeout_ms else DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
            with self.store.cursor() as cur:
                # An operator sees every row: no scope.
                read = read_capped(
                    cur, request.sql, scope=None, encode=lambda _columns, row: encode_row(row),
                    max_rows=request.max_rows or DEFAULT_ROWS, timeout_s=timeout_s, reply_cap=REPLY_CAP_BYTES,
                    who="a query through the agent")
            return qpb.ExecuteQueryResponse(columns=read.columns, column_types=read.types, rows_json=read.rows_json,
                                            row_count=read.row_count, truncated=read.truncated, source="agent")
        return _answer(run, context)


def _answer(run: Callable[[], T], context: grpc.ServicerContext) -> T:
    try:
        return run()
    except CoralError as e:
        abort(context, e)
