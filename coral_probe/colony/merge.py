"""The fleet's answer from its agents' answers (fleet.Answers): what each
QueryService call adds up to. Pure functions of the replies; which agents
are missing and when the whole call is refused is query_service.py's.

Every agent-named record carries the colony's id for that agent (the name
`missing`, ListAgents and ExecuteQuery's agent_id column use), whatever the
agent calls itself: one fleet, one set of names."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..api import qpb
from ..sketch import Sketch

DEFAULT_TRACES = 100
MAX_TRACES = 10_000


def services(replies: dict[str, qpb.ListServicesResponse]) -> list[qpb.Service]:
    """One per (agent, service), in the fleet's order."""
    return [_stamped(s, agent_id) for agent_id, reply in replies.items() for s in reply.services]


def service(replies: dict[str, qpb.GetServiceResponse]) -> qpb.GetServiceResponse:
    """The agents that know it, their processes summed, their functions unioned."""
    merged = qpb.GetServiceResponse(services=[_stamped(s, agent_id) for agent_id, reply in replies.items()
                                              for s in reply.services])
    merged.instance_count = sum(reply.instance_count for reply in replies.values())
    merged.functions[:] = sorted({f for reply in replies.values() for f in reply.functions})
    return merged


def sketches(replies: dict[str, qpb.GetPercentileResponse]) -> tuple[Sketch, dict[str, str]]:
    """The agents' sketches merged, and the agents whose sketch could not be
    merged (another accuracy, malformed) with why: left out, not guessed."""
    merged, unmergeable = Sketch(), {}
    for agent_id, reply in replies.items():
        try:
            merged.merge(Sketch.from_proto(reply.sketch))
        except ValueError as e:
            unmergeable[agent_id] = f"its sketch cannot be merged: {e}"
    return merged, unmergeable


def percentile(merged: Sketch, q: float, count: int) -> qpb.GetPercentileResponse:
    """`q` in 0-1, read from the merged sketch: the fleet's percentile, never an average of the agents'."""
    reply = qpb.GetPercentileResponse(value=merged.quantile(q), unit="ns", count=count)
    merged.to_proto(reply.sketch)
    return reply


def error_rate(replies: dict[str, qpb.GetErrorRateResponse]) -> qpb.GetErrorRateResponse:
    errors = sum(reply.error_count for reply in replies.values())
    total = sum(reply.total_count for reply in replies.values())
    return qpb.GetErrorRateResponse(rate=errors / total if total else 0.0, error_count=errors, total_count=total)


def traces(replies: dict[str, qpb.FindTracesResponse], *, slowest: bool, limit: int) -> qpb.FindTracesResponse:
    """Slowest first (`slowest`) or newest first, cut to `limit` (0: the
    default), over every agent's; total_count is the fleet's, before the cut."""
    every = [_stamped(t, agent_id) for agent_id, reply in replies.items() for t in reply.traces]
    if slowest:
        every.sort(key=lambda t: (t.duration_ns, t.timestamp_ns), reverse=True)
    else:
        every.sort(key=lambda t: t.timestamp_ns, reverse=True)
    return qpb.FindTracesResponse(traces=every[:min(limit or DEFAULT_TRACES, MAX_TRACES)],
                                  total_count=sum(reply.total_count for reply in replies.values()))


def system_metrics(replies: dict[str, qpb.GetSystemMetricsResponse]) -> list[qpb.SystemMetrics]:
    """One entry per agent, as it sampled itself."""
    return [_stamped(m, agent_id) for agent_id, reply in replies.items() for m in reply.agents]


def rows(replies: dict[str, qpb.ExecuteQueryResponse]) -> tuple[qpb.ExecuteQueryResponse, dict[str, str]]:
    """The agents' rows one after the other, each behind its agent's id (a
    first column `agent_id`). The first agent's columns are the reply's; an
    agent whose columns or types differ (another coral version's schema) is
    left out and returned with why. Values are re-encoded as they came:
    Python's json keeps integers of any size and floats exactly."""
    merged, differing = qpb.ExecuteQueryResponse(source="agents"), {}
    shape: tuple[list[str], list[str]] | None = None
    encoded: list[str] = []
    for agent_id, reply in replies.items():
        columns, types = list(reply.columns), list(reply.column_types)
        if shape is None:
            shape = columns, types
            first = agent_id
        elif (columns, types) != shape:
            differing[agent_id] = f"its columns ({_shape(columns, types)}) differ from {first}'s ({_shape(*shape)})"
            continue
        encoded.extend(json.dumps([agent_id, *row]) for row in json.loads(reply.rows_json or "[]"))
        merged.truncated |= reply.truncated
    columns, types = shape or ([], [])
    merged.columns[:] = ["agent_id", *columns]
    merged.column_types[:] = ["VARCHAR", *types]
    merged.rows_json = "[" + ",".join(encoded) + "]"
    merged.row_count = len(encoded)
    return merged, differing


def _shape(columns: Iterable[str], types: Iterable[str]) -> str:
    return ", ".join(f"{c} {t}" for c, t in zip(columns, types))


def _stamped(message, agent_id: str):
    message.agent_id = agent_id
    return message
