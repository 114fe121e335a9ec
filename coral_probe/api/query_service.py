"""QueryService: an operator's read-only questions to a running agent, the
agent's part of the fleet's query API (the colony asks every agent and
merges their answers).

Services, percentiles, error rates and traces are coral_probe/analytics.py's
answers, the same as the SDK's metrics.* and traces.*; a percentile carries
the sketch it was read from, so the colony merges sketches, never averages
percentiles. An unknown service is NOT_FOUND with the known names.

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

import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from .. import __version__, analytics
from ..errors import CoralError
from ..queries import read_capped
from ..query_wire import encode_row
from ..services import ServiceMap
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
    def __init__(self, store: Any, services: ServiceMap, agent_id: str, sampler: Any):
        # A coral_probe.store.Store; the agent's --service names and --id; its
        # agent.system_metrics.SystemSampler (the SDK's getCPU/getMemory).
        self.store, self.services, self.agent_id, self.sampler = store, services, agent_id, sampler

    def _service(self, info: analytics.ServiceInfo) -> qpb.Service:
        service = qpb.Service(name=info.name, agent_id=info.agent_id, instance_count=info.instance_count,
                              binaries=info.binaries, events=info.events)
        if info.last_seen_ns is not None:
            service.last_seen.FromNanoseconds(info.last_seen_ns)
        return service

    def ListServices(self, request: qpb.ListServicesRequest, context: grpc.ServicerContext) -> qpb.ListServicesResponse:
        def run() -> qpb.ListServicesResponse:
            with self.store.cursor() as cur:
                found = analytics.list_services(cur, self.services, self.agent_id)
            return qpb.ListServicesResponse(services=[self._service(s) for s in found])
        return _answer(run, context)

    def GetService(self, request: qpb.GetServiceRequest, context: grpc.ServicerContext) -> qpb.GetServiceResponse:
        def run() -> qpb.GetServiceResponse:
            with self.store.cursor() as cur:
                info, functions = analytics.get_service(cur, request.name, self.services, self.agent_id)
            return qpb.GetServiceResponse(services=[self._service(info)], instance_count=info.instance_count,
                                          functions=functions)
        return _answer(run, context)

    def GetPercentile(self, request: qpb.GetPercentileRequest,
                      context: grpc.ServicerContext) -> qpb.GetPercentileResponse:
        def run() -> qpb.GetPercentileResponse:
            with self.store.cursor() as cur:
                answer = analytics.percentile(cur, request.service, request.metric, request.percentile,
                                              request.time_range_ms, self.services)
            reply = qpb.GetPercentileResponse(value=answer.value, unit="ns", count=answer.count)
            answer.sketch.to_proto(reply.sketch)
            return reply
        return _answer(run, context)

    def GetErrorRate(self, request: qpb.GetErrorRateRequest, context: grpc.ServicerContext) -> qpb.GetErrorRateResponse:
        def run() -> qpb.GetErrorRateResponse:
            with self.store.cursor() as cur:
                rate, errors, total = analytics.error_rate(cur, request.service, request.function,
                                                           request.time_range_ms, self.services)
            return qpb.GetErrorRateResponse(rate=rate, error_count=errors, total_count=total)
        return _answer(run, context)

    def _traces(self, request: Any, *, min_duration_ns: int, errors_only: bool,
                context: grpc.ServicerContext) -> qpb.FindTracesResponse:
        def run() -> qpb.FindTracesResponse:
            with self.store.cursor() as cur:
                spans, total = analytics.find_spans(
                    cur, request.service, request.function, min_duration_ns=min_duration_ns,
                    errors_only=errors_only, window_ms=request.time_range_ms, limit=request.limit,
                    services=self.services)
            return qpb.FindTracesResponse(total_count=total, traces=[qpb.Trace(
                trace_id=s.trace_id(self.agent_id), agent_id=self.agent_id, service=s.service, function=s.function,
                pid=s.pid, tid=s.tid, timestamp_ns=s.timestamp_ns, duration_ns=s.duration_ns or 0,
                return_value=s.return_value or 0, args=s.args) for s in spans])
        return _answer(run, context)

    def FindSlowTraces(self, request: qpb.FindSlowTracesRequest,
                       context: grpc.ServicerContext) -> qpb.FindTracesResponse:
        return self._traces(request, min_duration_ns=request.min_duration_ns, errors_only=False, context=context)

    def FindErrorTraces(self, request: qpb.FindErrorTracesRequest,
                        context: grpc.ServicerContext) -> qpb.FindTracesResponse:
        return self._traces(request, min_duration_ns=0, errors_only=True, context=context)

    def GetSystemMetrics(self, request: qpb.GetSystemMetricsRequest,
                         context: grpc.ServicerContext) -> qpb.GetSystemMetricsResponse:
        cpu, memory = self.sampler.cpu(), self.sampler.memory()
        return qpb.GetSystemMetricsResponse(agents=[qpb.SystemMetrics(
            agent_id=self.agent_id, cpu_usage_percent=cpu["usage_percent"], cores=cpu["cores"], load1=cpu["load1"],
            load5=cpu["load5"], load15=cpu["load15"], memory_total_bytes=memory["total"],
            memory_available_bytes=memory["available"], memory_used_bytes=memory["used"],
            memory_usage_percent=memory["usage_percent"], sampled_at_ms=cpu["sampled_at_ms"])])

    def ListAgents(self, request: qpb.ListAgentsRequest, context: grpc.ServicerContext) -> qpb.ListAgentsResponse:
        now = Timestamp()
        now.FromNanoseconds(time.time_ns())
        return qpb.ListAgentsResponse(agents=[qpb.Agent(id=self.agent_id, reachable=True, last_seen=now,
                                                        version=__version__, hostname=socket.gethostname())])

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
