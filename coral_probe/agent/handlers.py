"""Answers to SDK requests, from real data: DuckDB, /proc, ELF symbols."""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import __version__
from ..errors import CoralError, ResourceExhausted
from ..gen.coral.sdk.v1 import sdk_pb2 as pb
from .policy import ProbePolicy
from .rate import TokenBucket
from .subscriptions import AgentTarget

# Heavier modules (DuckDB analytics, pyelftools) are imported where used so a
# script's first reply does not wait for them.

SEVERITIES = ("debug", "info", "warning", "error", "critical")
DEFAULT_QUERY_TIMEOUT_S = 10.0
# An emit is a finding, not a data channel: one that is large or comes in a
# flood costs the agent's DuckDB (96 MB of memory) and disk. A single large
# value is what once made a checkpoint fail and invalidate the database.
MAX_EMIT_BYTES = 64 << 10  # of JSON data
MAX_EMIT_NAME = 256
EMITS_PER_S, EMIT_BURST = 100, 1000
EMIT_BYTES_PER_S, EMIT_BYTES_BURST = 1 << 20, 8 << 20


class EmitLimits:
    """One execution's emits: their size, their rate in count and bytes; refusals are counted."""

    def __init__(self):
        self._count = TokenBucket(EMITS_PER_S, EMIT_BURST)
        self._bytes = TokenBucket(EMIT_BYTES_PER_S, EMIT_BYTES_BURST)
        self._lock = threading.Lock()
        self.refused = 0

    def admit(self, size: int) -> None:
        if size > MAX_EMIT_BYTES:
            problem = f"emit refused: {size} bytes, the limit is {MAX_EMIT_BYTES} bytes of JSON data"
        elif not (self._count.take() and self._bytes.take(size)):
            problem = (f"emit refused: over the rate limit of {EMITS_PER_S} emits and "
                       f"{EMIT_BYTES_PER_S >> 20} MiB a second (bursts of {EMIT_BURST} and "
                       f"{EMIT_BYTES_BURST >> 20} MiB)")
        else:
            return
        with self._lock:
            self.refused += 1
            refused = self.refused
        raise ResourceExhausted(f"{problem}; {refused} refused so far, counted in script_executions")


@dataclass
class ExecutionContext:
    execution_id: str
    script_id: str
    target: AgentTarget
    params: dict[str, str] = field(default_factory=dict)
    emits: EmitLimits = field(default_factory=EmitLimits)
    on_emit: Callable[[str, str], None] | None = None  # (name, data JSON), once stored


class Handlers:
    def __init__(self, store, sampler, policy: ProbePolicy = ProbePolicy()):
        self.store, self.sampler, self.policy = store, sampler, policy

    def interrupt(self) -> None:
        """Stops the queries of requests in flight (the agent is stopping)."""
        self.store.interrupt()

    def hello(self, ctx: ExecutionContext) -> pb.Response:
        return pb.Response(hello=pb.HelloReply(
            execution_id=ctx.execution_id, script_id=ctx.script_id, agent_version=__version__, params=ctx.params,
            target=pb.Target(binary=ctx.target.binary or "", pid=ctx.target.pid or 0)))

    def handle(self, ctx: ExecutionContext, req: pb.Request) -> pb.Response:
        call = req.WhichOneof("call")
        method = getattr(self, f"_{call}", None)
        if method is None:
            raise CoralError(f"unsupported call: {call}")
        return method(ctx, getattr(req, call))

    def _emit(self, ctx, m: pb.Emit) -> pb.Response:
        if not m.name:
            raise CoralError("emit needs a name")
        if len(m.name) > MAX_EMIT_NAME:
            raise CoralError(f"emit name of {len(m.name)} characters: the limit is {MAX_EMIT_NAME}")
        severity = m.severity or "info"
        if severity not in SEVERITIES:
            raise CoralError(f"invalid severity '{severity}': one of {', '.join(SEVERITIES)}")
        ctx.emits.admit(len(m.data_json.encode()))
        try:
            json.loads(m.data_json or "null")
        except ValueError:
            raise CoralError("emit data is not valid JSON") from None
        event_id = self.store.emit(m.name, m.data_json or "null", severity, ctx.script_id, ctx.execution_id)
        if ctx.on_emit is not None:
            ctx.on_emit(m.name, m.data_json or "null")
        return pb.Response(emit=pb.EmitReply(id=event_id))

    def _query(self, ctx, m: pb.Query) -> pb.Response:
        from ..queries import sdk_query
        from ..query_scope import QueryScope

        timeout = min(m.timeout_ms / 1000 if m.timeout_ms else DEFAULT_QUERY_TIMEOUT_S, 60.0)
        with self.store.cursor() as cur:
            reply = sdk_query(cur, m.sql, QueryScope(ctx.script_id, ctx.execution_id), timeout)
        return pb.Response(query=pb.QueryReply(columns=reply.columns, rows_json=reply.rows_json,
                                               row_count=reply.row_count, truncated=reply.truncated))

    def _get_percentile(self, ctx, m: pb.GetPercentile) -> pb.Response:
        from ..analytics import percentile

        with self.store.cursor() as cur:
            value, count = percentile(cur, m.service, m.metric, m.percentile, m.window_ms)
        return pb.Response(percentile=pb.PercentileReply(value_ns=value, count=count))

    def _get_error_rate(self, ctx, m: pb.GetErrorRate) -> pb.Response:
        from ..analytics import error_rate

        with self.store.cursor() as cur:
            rate, errors, total = error_rate(cur, m.service, m.function, m.window_ms)
        return pb.Response(error_rate=pb.ErrorRateReply(rate=rate, errors=errors, total=total))

    def _spans(self, m: pb.FindSpans, errors_only: bool) -> pb.Response:
        from ..analytics import find_spans

        with self.store.cursor() as cur:
            spans = find_spans(cur, m.service, m.function, min_duration_ns=m.min_duration_ns,
                               errors_only=errors_only, window_ms=m.window_ms, limit=m.limit)
        return pb.Response(spans=pb.SpansReply(spans=[pb.Span(
            function=s["function"], service=s["service"], pid=s["pid"], tid=s["tid"], timestamp_ns=s["timestamp_ns"],
            duration_ns=s["duration_ns"] or 0, return_value=s["return_value"] or 0, args=s["args"]) for s in spans]))

    def _find_slow(self, ctx, m: pb.FindSpans) -> pb.Response:
        return self._spans(m, errors_only=False)

    def _find_errors(self, ctx, m: pb.FindSpans) -> pb.Response:
        return self._spans(m, errors_only=True)

    def _get_cpu(self, ctx, m) -> pb.Response:
        return pb.Response(cpu=pb.CpuReply(**self.sampler.cpu()))

    def _get_memory(self, ctx, m) -> pb.Response:
        mem = self.sampler.memory()
        return pb.Response(memory=pb.MemoryReply(total_bytes=mem["total"], available_bytes=mem["available"],
                                                 used_bytes=mem["used"], usage_percent=mem["usage_percent"]))

    def _symbols(self, ctx: ExecutionContext, binary: str):
        """The target whose functions a script asks about: a file it names, or
        its own target with the libraries that loads."""
        from ..targets import resolve_binary, resolve_target

        t = ctx.target
        if binary:
            self.policy.check_binary(binary, t)
            return resolve_binary(binary, t.pid, program=t.program)
        target = resolve_target(t.binary, t.pid, t.program)
        if target is None:
            raise CoralError("no binary: pass { binary } or start the script with a target")
        return target

    @staticmethod
    def _info(located) -> pb.FunctionInfo:
        # `binary` is the path coral read, so a script can hand it back as { binary }
        # (a container's files through /proc/PID/root).
        fn = located.function
        return pb.FunctionInfo(name=fn.name, symbol=fn.symbol, address=fn.address, size=fn.size,
                               binary=located.path)

    def _list_functions(self, ctx, m: pb.ListFunctions) -> pb.Response:
        from ..function_lookup import list_functions

        found = list_functions(self._symbols(ctx, m.binary), m.pattern or "*")
        limit = m.limit or 1000
        return pb.Response(functions=pb.FunctionsReply(
            functions=[self._info(f) for f in found[:limit]], total=len(found)))

    def _get_function(self, ctx, m: pb.GetFunction) -> pb.Response:
        from ..function_lookup import find_functions

        matches = find_functions(self._symbols(ctx, m.binary), [m.name], limit=1)
        return pb.Response(function=pb.FunctionReply(function=self._info(matches[0])))
