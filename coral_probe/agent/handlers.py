"""Answers to SDK requests, from real data: DuckDB, /proc, ELF symbols."""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import __version__
from ..errors import CoralError, ResourceExhausted
from ..gen.coral.sdk.v1 import sdk_pb2 as pb
from ..services import ServiceMap
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
# The default of `coral agent start --emits-per-second`; bursts are 10x the
# rate, and the bytes a second scale with it (1 MiB a second at the default).
EMITS_PER_S = 100
BURST_SECONDS = 10
EMIT_BYTES_PER_EMIT = (1 << 20) / EMITS_PER_S


class EmitLimits:
    """One execution's emits: their size, their rate in count and bytes; refusals are counted."""

    def __init__(self, per_s: float = EMITS_PER_S):
        self.per_s = per_s
        self._count = TokenBucket(per_s, per_s * BURST_SECONDS)
        self._bytes = TokenBucket(per_s * EMIT_BYTES_PER_EMIT, per_s * EMIT_BYTES_PER_EMIT * BURST_SECONDS)
        self._lock = threading.Lock()
        self.refused = 0

    def admit(self, size: int) -> None:
        [refused] = self.admit_each([size])
        if refused is not None:
            raise refused

    def admit_each(self, sizes: list[int]) -> list[ResourceExhausted | None]:
        """admit() of emits received together, in turn: for each, None or why it is refused."""
        fitting = [size <= MAX_EMIT_BYTES for size in sizes]
        counted = iter(self._count.take_each([1] * sum(fitting)))
        paid = [fits and next(counted) for fits in fitting]
        bytes_paid = iter(self._bytes.take_each([size for size, ok in zip(sizes, paid) if ok]))
        admitted = [ok and next(bytes_paid) for ok in paid]
        if all(admitted):
            return [None] * len(sizes)
        per_s, bytes_per_s = self.per_s, self.per_s * EMIT_BYTES_PER_EMIT
        too_fast = (f"emit refused: over the rate limit of {per_s:.0f} emits and {_mib(bytes_per_s)} a second "
                    f"(bursts of {per_s * BURST_SECONDS:.0f} and {_mib(bytes_per_s * BURST_SECONDS)})")
        problems: list[ResourceExhausted | None] = []
        for size, fits, ok in zip(sizes, fitting, admitted):
            if ok:
                problems.append(None)
                continue
            with self._lock:
                self.refused += 1
                refused = self.refused
            problem = too_fast if fits else f"emit refused: {size} bytes, the limit is {MAX_EMIT_BYTES} bytes of JSON data"
            problems.append(ResourceExhausted(f"{problem}; {refused} refused so far, counted in script_executions"))
        return problems


def _mib(n: float) -> str:
    mib = n / (1 << 20)
    return f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.2g} MiB"


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
        self.services = ServiceMap()  # `coral agent start --service`s (api/agent_main.py sets them)

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

    def emit_many(self, ctx: ExecutionContext, emits: list[pb.Emit]) -> list[str | CoralError]:
        """Emits a connection sent one after another: each checked on its own
        (a refused one is counted and answered alone), the valid ones stored
        in one INSERT. For each, in order, its event id or why it was refused;
        ids only once stored."""
        results: list[str | CoralError] = []
        checked: list[tuple[int, pb.Emit]] = []  # (index, emit) of those past the checks of their fields
        for i, m in enumerate(emits):
            try:
                self._check_fields(m)
                checked.append((i, m))
                results.append("")
            except CoralError as e:
                results.append(e)
        valid: list[tuple[str, str, str]] = []  # (name, data JSON, severity)
        refusals = ctx.emits.admit_each([len(m.data_json.encode()) for _, m in checked])
        for (i, m), refused in zip(checked, refusals):
            if refused is not None:
                results[i] = refused
                continue
            data_json = m.data_json or "null"
            try:
                json.loads(data_json)
            except (ValueError, RecursionError):
                results[i] = CoralError("emit data is not valid JSON")
                continue
            valid.append((m.name, data_json, m.severity or "info"))
        if not valid:
            return results
        try:
            ids = self.store.emit_many(valid, ctx.script_id, ctx.execution_id)
        except CoralError as e:  # the store failed: none of them is stored
            return [e if r == "" else r for r in results]
        stored = iter(ids)
        results = [(next(stored) or CoralError("emit data is not valid JSON")) if r == "" else r for r in results]
        if ctx.on_emit is not None:
            for (name, data_json, _), event_id in zip(valid, ids):
                if event_id is not None:
                    ctx.on_emit(name, data_json)
        return results

    @staticmethod
    def _check_fields(m: pb.Emit) -> None:
        name, severity = m.name, m.severity or "info"
        if not name:
            raise CoralError("emit needs a name")
        if len(name) > MAX_EMIT_NAME:
            raise CoralError(f"emit name of {len(name)} characters: the limit is {MAX_EMIT_NAME}")
        if severity not in SEVERITIES:
            raise CoralError(f"invalid severity '{severity}': one of {', '.join(SEVERITIES)}")

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
            answer = percentile(cur, m.service, m.metric, m.percentile, m.window_ms, self.services)
        return pb.Response(percentile=pb.PercentileReply(value_ns=answer.value, count=answer.count))

    def _get_error_rate(self, ctx, m: pb.GetErrorRate) -> pb.Response:
        from ..analytics import error_rate

        with self.store.cursor() as cur:
            rate, errors, total = error_rate(cur, m.service, m.function, m.window_ms, self.services)
        return pb.Response(error_rate=pb.ErrorRateReply(rate=rate, errors=errors, total=total))

    def _spans(self, m: pb.FindSpans, errors_only: bool) -> pb.Response:
        from ..analytics import find_spans

        with self.store.cursor() as cur:
            spans, _ = find_spans(cur, m.service, m.function, min_duration_ns=m.min_duration_ns,
                                  errors_only=errors_only, window_ms=m.window_ms, limit=m.limit,
                                  services=self.services)
        return pb.Response(spans=pb.SpansReply(spans=[pb.Span(
            function=s.function, service=s.service, pid=s.pid, tid=s.tid, timestamp_ns=s.timestamp_ns,
            duration_ns=s.duration_ns or 0, return_value=s.return_value or 0, args=s.args) for s in spans]))

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
