"""QueryService on the colony: each call asked of every agent in parallel
(fleet.py), the answers merged (merge.py); agents that did not answer are
named in `missing`, and never fail the whole fleet's answer.

An agent that answered with an error status is judged per call: NOT_FOUND
to a call about a service means it does not know the service (it adds
nothing); any other refusal leaves its part out, named in `missing` with
why. Only when no agent gave an answer is the call refused: NOT_FOUND with
the fleet's known services for a service nobody knows, the agents' own code
and message when each one that answered refused alike ("rejected on every
agent"), UNAVAILABLE when none answered at all.

ExecuteQuery naming only the colony's own tables (store.TABLES: the fleet's
emitted_events), or none (SELECT 1), runs on the colony's DuckDB with the
agents' guardrails; any other runs on every agent (a write is theirs to
refuse, and so the colony's refusal), its rows concatenated behind
`agent_id`."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..api import qpb, qpb_grpc
from ..api.query_service import DEFAULT_ROWS, DEFAULT_TIMEOUT_S, MAX_ROWS, MAX_TIMEOUT_S, REPLY_CAP_BYTES
from ..api.status import abort
from ..errors import CoralError, ResourceExhausted
from ..queries import read_capped
from ..query_scope import check_statement
from ..query_wire import encode_row
from . import merge
from .fleet import Answers, Fleet, reason_of
from .store import TABLES, ColonyStore

WHO = "a query through the colony"


class ColonyQueryServicer(qpb_grpc.QueryServiceServicer):
    def __init__(self, fleet: Fleet, store: ColonyStore):
        self.fleet, self.store = fleet, store
        self._stubs = {state.channel: qpb_grpc.QueryServiceStub(state.channel) for state in fleet.agents.values()}

    def ListServices(self, request: qpb.ListServicesRequest, context: grpc.ServicerContext) -> qpb.ListServicesResponse:
        replies, missing = self._gather("ListServices", request, context)
        return qpb.ListServicesResponse(services=merge.services(replies), missing=missing)

    def GetService(self, request: qpb.GetServiceRequest, context: grpc.ServicerContext) -> qpb.GetServiceResponse:
        replies, missing = self._gather("GetService", request, context, service=request.name)
        reply = merge.service(replies)
        reply.missing.extend(missing)
        return reply

    def GetPercentile(self, request: qpb.GetPercentileRequest,
                      context: grpc.ServicerContext) -> qpb.GetPercentileResponse:
        q = request.percentile / 100 if request.percentile > 1 else request.percentile
        if not 0 <= q <= 1:  # NaN too
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"percentile {request.percentile:g} out of range: use 0-1 (0.99) or 0-100 (99)")
        replies, missing = self._gather("GetPercentile", request, context, service=request.service)
        merged, unmergeable = merge.sketches(replies)
        reply = merge.percentile(merged, q, sum(r.count for a, r in replies.items() if a not in unmergeable))
        reply.missing.extend(self._in_fleet_order(missing, unmergeable))
        return reply

    def GetErrorRate(self, request: qpb.GetErrorRateRequest, context: grpc.ServicerContext) -> qpb.GetErrorRateResponse:
        replies, missing = self._gather("GetErrorRate", request, context, service=request.service)
        reply = merge.error_rate(replies)
        reply.missing.extend(missing)
        return reply

    def FindSlowTraces(self, request: qpb.FindSlowTracesRequest,
                       context: grpc.ServicerContext) -> qpb.FindTracesResponse:
        replies, missing = self._gather("FindSlowTraces", request, context, service=request.service)
        reply = merge.traces(replies, slowest=True, limit=request.limit)
        reply.missing.extend(missing)
        return reply

    def FindErrorTraces(self, request: qpb.FindErrorTracesRequest,
                        context: grpc.ServicerContext) -> qpb.FindTracesResponse:
        replies, missing = self._gather("FindErrorTraces", request, context, service=request.service)
        reply = merge.traces(replies, slowest=False, limit=request.limit)
        reply.missing.extend(missing)
        return reply

    def GetSystemMetrics(self, request: qpb.GetSystemMetricsRequest,
                         context: grpc.ServicerContext) -> qpb.GetSystemMetricsResponse:
        replies, missing = self._gather("GetSystemMetrics", request, context)
        return qpb.GetSystemMetricsResponse(agents=merge.system_metrics(replies), missing=missing)

    def ExecuteQuery(self, request: qpb.ExecuteQueryRequest, context: grpc.ServicerContext) -> qpb.ExecuteQueryResponse:
        timeout_s = min(request.timeout_ms / 1000 if request.timeout_ms else DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
        try:
            if request.max_rows > MAX_ROWS:
                raise CoralError(f"max_rows {request.max_rows}: at most {MAX_ROWS}")
            with self.store.cursor() as cur:
                if _names_only(cur, request.sql, TABLES):
                    read = read_capped(cur, request.sql, scope=None, encode=lambda _columns, row: encode_row(row),
                                       max_rows=request.max_rows or DEFAULT_ROWS, timeout_s=timeout_s,
                                       reply_cap=REPLY_CAP_BYTES, who=WHO)
                    return qpb.ExecuteQueryResponse(columns=read.columns, column_types=read.types,
                                                    rows_json=read.rows_json, row_count=read.row_count,
                                                    truncated=read.truncated, source="colony")
        except CoralError as e:
            abort(context, e)
        # Each agent has the query's own time limit, and a moment to send its rows.
        replies, missing = self._gather("ExecuteQuery", request, context,
                                        deadline_s=max(self.fleet.deadline_s, timeout_s + 1.0))
        reply, differing = merge.rows(replies)
        if len(reply.rows_json) > REPLY_CAP_BYTES:
            abort(context, ResourceExhausted(f"the fleet's rows exceed {REPLY_CAP_BYTES >> 20} MiB: select fewer or "
                                             "smaller columns, or add a LIMIT (max_rows is per agent)"))
        reply.missing.extend(self._in_fleet_order(missing, differing))
        return reply

    def ListAgents(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Every agent asked now: reachable or not, with when it last answered."""
        answers = self._ask("ListAgents", qpb.ListAgentsRequest())
        for agent_id, reply in answers.replies.items():
            if reply.agents:
                self.fleet.note_identity(agent_id, reply.agents[0].version, reply.agents[0].hostname)
        agents = []
        for agent_id, state in self.fleet.agents.items():
            agent = qpb.Agent(id=agent_id, address=state.address.address, reachable=state.reachable,
                              version=state.version, hostname=state.hostname, error=state.error)
            if state.last_seen is not None:
                seen = Timestamp()
                seen.FromNanoseconds(int(state.last_seen * 1e9))
                agent.last_seen.CopyFrom(seen)
            agents.append(agent)
        return qpb.ListAgentsResponse(agents=agents)

    def _ask(self, method: str, request: Any, *, deadline_s: float | None = None) -> Answers:
        return self.fleet.ask(lambda channel, timeout: getattr(self._stubs[channel], method)(request, timeout=timeout),
                              deadline_s=deadline_s)

    def _gather(self, method: str, request: Any, context: grpc.ServicerContext, *, service: str | None = None,
                deadline_s: float | None = None) -> tuple[dict[str, Any], list[qpb.MissingAgent]]:
        """The replies of the agents that gave one, and the missing ones
        (silent, or refused in a way that leaves their part out). `service`:
        the call is about that service, and NOT_FOUND means "not here"."""
        answers = self._ask(method, request, deadline_s=deadline_s)
        if not answers.replies:
            self._refuse(answers, context, service)
        left_out = {agent_id: reason_of(e, deadline_s or self.fleet.deadline_s)
                    for agent_id, e in answers.refused.items()
                    if service is None or e.code() != grpc.StatusCode.NOT_FOUND}
        return answers.replies, self._in_fleet_order(answers.missing, left_out)

    def _refuse(self, answers: Answers, context: grpc.ServicerContext, service: str | None) -> None:
        """No agent gave an answer: the call ends with one line saying why (raises)."""
        silent = ", ".join(m.agent_id for m in answers.missing)
        if not answers.refused:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no agent answered: " + "; ".join(
                f"{m.agent_id} ({m.reason})" for m in answers.missing))
        refusals = list(answers.refused.values())
        if service is not None and all(e.code() == grpc.StatusCode.NOT_FOUND for e in refusals):
            code, message = grpc.StatusCode.NOT_FOUND, self._unknown_service(service, refusals[0])
        else:
            code = refusals[0].code()
            messages = {agent_id: _message(e) for agent_id, e in answers.refused.items()}
            if len({e.code() for e in refusals}) == 1 and len(set(messages.values())) == 1:
                every = "every agent that answered" if silent else "every agent"
                message = f"{_message(refusals[0])} (rejected on {every})"
            else:
                message = "; ".join(f"{agent_id}: {m}" for agent_id, m in messages.items())
        context.abort(code, message + (f"; no answer from {silent}" if silent else ""))

    def _unknown_service(self, name: str, refusal: grpc.RpcError) -> str:
        """NOT_FOUND from every agent that answered: the fleet's known services, as an agent words it."""
        answers = self._ask("ListServices", qpb.ListServicesRequest())
        known = sorted({s.name for reply in answers.replies.values() for s in reply.services})
        if name in known:  # known, so the agents' NOT_FOUND is about something else: theirs to word
            return _message(refusal)
        return f"unknown service '{name}': " + (f"known: {', '.join(known)}" if known else "no services yet")

    def _in_fleet_order(self, missing: list[qpb.MissingAgent], more: dict[str, str]) -> list[qpb.MissingAgent]:
        order = {agent_id: n for n, agent_id in enumerate(self.fleet.agents)}
        every = [*missing, *(qpb.MissingAgent(agent_id=a, reason=reason) for a, reason in more.items())]
        return sorted(every, key=lambda m: order[m.agent_id])


def _message(e: grpc.RpcError) -> str:
    """An agent's refusal in one line."""
    text = (e.details() or "").strip()
    return text.splitlines()[0] if text else e.code().name.lower()


def _names_only(cur: Any, sql: str, tables: frozenset[str]) -> bool:
    """Whether `sql` is one SELECT reading nothing but `tables` (and the
    allowed table functions): the colony's own question. Anything else,
    writes and malformed text included, is the agents' to answer or refuse."""
    try:
        check_statement(cur, sql, who=WHO, tables=tables)
    except CoralError:
        return False
    return True
