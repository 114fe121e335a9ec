"""QueryService from the client side: rows as `coral query sql` prints them
(queries.ReadRows), and functions as the agent lists them."""

from __future__ import annotations

import grpc

from ..queries import ReadRows
from ..query_wire import decode_rows
from . import pb, pb_grpc, qpb, qpb_grpc


def ask(channel: grpc.Channel, sql: str, *, max_rows: int, timeout_s: float,
        query_timeout_ms: int = 0) -> qpb.ExecuteQueryResponse:
    """The reply as it comes (rows as JSON). Raises grpc.RpcError with the agent's one-line message."""
    return qpb_grpc.QueryServiceStub(channel).ExecuteQuery(
        qpb.ExecuteQueryRequest(sql=sql, max_rows=max_rows, timeout_ms=query_timeout_ms), timeout=timeout_s)


def execute(channel: grpc.Channel, sql: str, *, max_rows: int, timeout_s: float,
            query_timeout_ms: int = 0) -> ReadRows:
    """The rows as Python values, as `coral query sql` reads them from the file."""
    return rows_of(ask(channel, sql, max_rows=max_rows, timeout_s=timeout_s, query_timeout_ms=query_timeout_ms))


def rows_of(reply: qpb.ExecuteQueryResponse) -> ReadRows:
    types = list(reply.column_types)
    return ReadRows(list(reply.columns), types, decode_rows(reply.rows_json, types), reply.truncated)


def list_functions(channel: grpc.Channel, *, binary: str = "", pid: int = 0, pattern: str = "",
                   limit: int = 0, timeout_s: float) -> pb.ListFunctionsResponse:
    return pb_grpc.AgentServiceStub(channel).ListFunctions(
        pb.ListFunctionsRequest(binary=binary, pid=pid, pattern=pattern, limit=limit), timeout=timeout_s)

