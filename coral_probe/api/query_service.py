"""QueryService: an operator's read-only questions to a running agent.

ExecuteQuery is `coral query sql` (and the MCP tool coral_query_sql) while the
agent holds the DuckDB file. The guardrails are db.query's: one SELECT,
naming only the agent's data tables unqualified and a few table functions
(query_scope.check_statement), on a cursor whose store refuses file and
network access; a row cap, a deadline and a reply size cap. Unlike a
script, an operator sees every row: no scope views. ListFunctions is what
a probe could attach to in a binary or a process (function_lookup).

Errors are one line: CoralError → INVALID_ARGUMENT, NotFound → NOT_FOUND,
a scope refusal → PERMISSION_DENIED, a cap → RESOURCE_EXHAUSTED, the
deadline → DEADLINE_EXCEEDED, a closing store → UNAVAILABLE."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb
import grpc

from ..errors import CoralError, NotFound, PermissionDenied, ResourceExhausted, StoreFailed
from ..query_scope import check_statement
from ..query_wire import encode_row
from . import pb, pb_grpc

DEFAULT_ROWS = 1000
MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
# Under gRPC's default 4 MiB a client accepts, with room for the columns.
REPLY_CAP_BYTES = 3 << 20
# Rows encoded at a time: the byte cap and the deadline are checked between them.
FETCH_ROWS = 32
DEFAULT_FUNCTIONS = 1000

T = TypeVar("T")


class QueryTimedOut(CoralError):
    """The query ran past its deadline and was interrupted."""


def execute_query(cur: duckdb.DuckDBPyConnection, sql: str, *, max_rows: int, timeout_s: float,
                  reply_cap: int = REPLY_CAP_BYTES) -> pb.ExecuteQueryResponse:
    """One read-only SELECT on `cur` (a cursor of its own), all of it
    (planning, running, encoding) within `timeout_s`."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise CoralError(f"invalid SQL: {str(e).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        what = f"a {statements[0].type.name} statement" if len(statements) == 1 else f"{len(statements)} statements"
        raise CoralError(f"the agent runs one read-only SELECT statement, not {what}")
    deadline = time.monotonic() + timeout_s
    timed_out = QueryTimedOut(f"query timed out after {timeout_s:g}s")
    timer = threading.Timer(timeout_s, cur.interrupt)
    timer.start()
    try:
        # The text checked is the text run (as for db.query).
        check_statement(cur, sql, who="a query through the agent")
        cur.complete()  # the check's own result, before the connection runs another
        rel = cur.sql(sql)
        columns, types = list(rel.columns), [str(t) for t in rel.types]
        if "TIMESTAMP_NS" in types:
            # Python's datetime stops at microseconds: nanoseconds as ISO text,
            # as `coral query sql` on the file prints them (queries.run_readonly).
            rel = rel.project(", ".join(f"strftime(#{i}, '%Y-%m-%dT%H:%M:%S.%n')" if t == "TIMESTAMP_NS"
                                        else f"#{i}" for i, t in enumerate(types, 1)))
        rows: list[str] = []
        size = 2  # the brackets
        truncated = False
        for row in rel.limit(max_rows + 1).iter_rows(batch_size=FETCH_ROWS):
            if len(rows) == max_rows:
                truncated = True
                break
            if time.monotonic() > deadline:
                raise timed_out
            text = encode_row(row)
            size += len(text) + 1
            if size > reply_cap:
                raise ResourceExhausted(f"query reply exceeds {reply_cap >> 20} MiB: select fewer or smaller "
                                        "columns, or add a LIMIT")
            rows.append(text)
    except duckdb.InterruptException:
        raise timed_out from None
    except duckdb.Error as e:
        raise CoralError(f"query failed: {str(e).splitlines()[0]}") from None
    finally:
        timer.cancel()
    return pb.ExecuteQueryResponse(columns=columns, column_types=types, rows_json="[" + ",".join(rows) + "]",
                                   row_count=len(rows), truncated=truncated)


def list_functions(request: pb.ListFunctionsRequest) -> pb.ListFunctionsResponse:
    from ..function_lookup import list_functions as lookup
    from ..targets import resolve_binary, resolve_pid

    if request.pid < 0:
        raise CoralError(f"invalid pid {request.pid}")
    pid = request.pid or None
    if request.binary:
        target = resolve_binary(request.binary, pid)
    elif pid is not None:
        target = resolve_pid(pid)
    else:
        raise CoralError("give a binary or a pid")
    found = lookup(target, request.pattern or "*")
    limit = request.limit or DEFAULT_FUNCTIONS
    return pb.ListFunctionsResponse(
        functions=[pb.FunctionInfo(name=f.function.name, file=f.path, address=f.function.address,
                                   size=f.function.size) for f in found[:limit]],
        truncated=len(found) > limit)


class QueryServicer(pb_grpc.QueryServiceServicer):
    def __init__(self, store: Any):  # a coral_probe.store.Store
        self.store = store

    def ExecuteQuery(self, request: pb.ExecuteQueryRequest, context: grpc.ServicerContext) -> pb.ExecuteQueryResponse:
        def run() -> pb.ExecuteQueryResponse:
            if request.max_rows > MAX_ROWS:
                raise CoralError(f"max_rows {request.max_rows}: at most {MAX_ROWS}")
            timeout_s = min(request.timeout_ms / 1000 if request.timeout_ms else DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
            with self.store.cursor() as cur:
                return execute_query(cur, request.sql, max_rows=request.max_rows or DEFAULT_ROWS,
                                     timeout_s=timeout_s)
        return _answer(run, context)

    def ListFunctions(self, request: pb.ListFunctionsRequest,
                      context: grpc.ServicerContext) -> pb.ListFunctionsResponse:
        return _answer(lambda: list_functions(request), context)


_CODES: tuple[tuple[type[CoralError], grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (QueryTimedOut, grpc.StatusCode.DEADLINE_EXCEEDED),
    (StoreFailed, grpc.StatusCode.UNAVAILABLE),
    (CoralError, grpc.StatusCode.INVALID_ARGUMENT),
)


def _answer(run: Callable[[], T], context: grpc.ServicerContext) -> T:
    try:
        return run()
    except CoralError as e:
        code = next(code for kind, code in _CODES if isinstance(e, kind))
        message = str(e).strip().splitlines()
        context.abort(code, message[0] if message else type(e).__name__)  # raises
