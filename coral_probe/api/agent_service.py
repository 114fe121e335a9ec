"""AgentService over a ScriptRegistry: the RPCs of coral/agent/v1 mapped onto
deploy/stop/delete/list/status/logs. Errors become status codes (api/status.py)
with the registry's one-line message: InvalidScript → INVALID_ARGUMENT (a bad
cron or a condition that is not one read-only SELECT is one), ScriptNotFound →
NOT_FOUND, a plain CoralError → FAILED_PRECONDITION.

Triggers (agent/triggers.py): manual runs once at deploy; a schedule or an
event trigger keeps its script PENDING between runs, RUNNING during one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..agent.policy import ProbePolicy
from ..agent.registry import (ExecutionOutput, ExecutionRecord, InvalidScript, LogBatch, ScriptRecord, ScriptRegistry)
from ..agent.triggers import EVENT, SCHEDULE, Trigger
from ..errors import CoralError
from .client_targets import check_client_target
from .status import abort
from . import pb, pb_grpc
from .run_service import run_script

DEFAULT_STATUS_TAIL = 10
DEFAULT_LOG_TAIL = 100
MAX_TAIL = 10_000
MAX_BATCH_CHARS = 256 << 10  # at most 1 MiB of UTF-8 a message

# Registry statuses (scripts.status, script_executions.status) → the proto's.
_STATUS = {
    "pending": pb.SCRIPT_STATUS_PENDING,
    "running": pb.SCRIPT_STATUS_RUNNING,
    "stopped": pb.SCRIPT_STATUS_STOPPED,
    "timeout": pb.SCRIPT_STATUS_STOPPED,
    "deleted": pb.SCRIPT_STATUS_STOPPED,
    "completed": pb.SCRIPT_STATUS_COMPLETED,
    "interrupted": pb.SCRIPT_STATUS_INTERRUPTED,
}
_FILTER = {
    pb.SCRIPT_STATUS_PENDING: "pending",
    pb.SCRIPT_STATUS_RUNNING: "running",
    pb.SCRIPT_STATUS_STOPPED: "stopped",
    pb.SCRIPT_STATUS_FAILED: "failed",
    pb.SCRIPT_STATUS_COMPLETED: "completed",
    pb.SCRIPT_STATUS_INTERRUPTED: "interrupted",
}

T = TypeVar("T")


def _status(value: str | None) -> Any:  # a pb.ScriptStatus value
    if value is None:
        return pb.SCRIPT_STATUS_UNSPECIFIED
    return _STATUS.get(value, pb.SCRIPT_STATUS_FAILED)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:  # DuckDB TIMESTAMP columns hold UTC
        value = value.replace(tzinfo=timezone.utc)
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _log_messages(batch: LogBatch) -> Iterator[Any]:
    """`batch` as ScriptLogBatch messages of at most MAX_BATCH_CHARS of text
    (lines are up to 16 KiB: 5,000 of them would pass gRPC's 4 MiB limit)."""
    message, size = pb.ScriptLogBatch(), 0
    for us, stream, line, lost in batch.rows:
        if size > MAX_BATCH_CHARS:
            yield message
            message, size = pb.ScriptLogBatch(), 0
        entry = message.entries.add(stream=stream, line=line, execution_id=batch.execution_id, lost=lost)
        if us is not None:
            seconds, micros = divmod(us, 1_000_000)
            entry.timestamp.seconds, entry.timestamp.nanos = seconds, micros * 1000
        size += len(line)
    if message.entries:
        yield message


def _tail(value: int, default: int) -> int:
    if value < 0:
        raise InvalidScript(f"invalid tail {value}: must be 0 (the default) or more")
    return min(value or default, MAX_TAIL)


def _ref(ref: str, script_id: str) -> str:
    chosen = ref or script_id
    if not chosen:
        raise InvalidScript("no script named: give ref (an id or a name) or script_id")
    return chosen


def _trigger(trigger: Any) -> Trigger:  # a pb.ScriptTrigger
    which = trigger.WhichOneof("trigger")
    if which == "schedule":
        return Trigger(SCHEDULE, cron=trigger.schedule.cron)
    if which == "event":
        return Trigger(EVENT, condition=trigger.event.condition,
                       check_interval_s=float(trigger.event.check_interval_seconds) or None)
    return Trigger()


def _trigger_pb(trigger: Trigger) -> Any:
    if trigger.kind == SCHEDULE:
        return pb.ScriptTrigger(schedule=pb.ScheduleTrigger(cron=trigger.cron or ""))
    if trigger.kind == EVENT:
        return pb.ScriptTrigger(event=pb.EventTrigger(condition=trigger.condition or "",
                                                      check_interval_seconds=int(trigger.check_interval_s or 0)))
    return pb.ScriptTrigger(manual=pb.ManualTrigger())


def _script(record: ScriptRecord) -> pb.Script:
    script = pb.Script(id=record.id, name=record.name, version=record.version,
                       created_by=record.created_by or "", params=record.params,
                       mode=pb.SCRIPT_MODE_DAEMON if record.mode == "daemon" else pb.SCRIPT_MODE_AD_HOC,
                       timeout_seconds=int(record.timeout_s), status=_status(record.status),
                       trigger=_trigger_pb(record.trigger))
    created = _timestamp(record.created_at)
    if created is not None:
        script.created_at.CopyFrom(created)
    return script


def _execution(record: ExecutionRecord, script_id: str, output: ExecutionOutput) -> pb.ScriptExecution:
    execution = pb.ScriptExecution(execution_id=record.execution_id, script_id=script_id,
                                   status=_status(record.status), end_reason=record.end_reason or "",
                                   has_exit_code=record.exit_code is not None,
                                   exit_code=record.exit_code if record.exit_code is not None else 0,
                                   stdout="".join(f"{line}\n" for line in output.stdout),
                                   stderr="".join(f"{line}\n" for line in output.stderr))
    for name, data, at in output.events:
        event = execution.events.add(name=name, data=data or "")
        event.timestamp.CopyFrom(_timestamp(at))
    started, completed = _timestamp(record.started_at), _timestamp(record.ended_at)
    if started is not None:
        execution.started_at.CopyFrom(started)
    if completed is not None:
        execution.completed_at.CopyFrom(completed)
    return execution


# A reply lists at most this many functions, and at most FUNCTIONS_REPLY_CAP bytes of them.
DEFAULT_FUNCTIONS = 1000
MAX_FUNCTIONS = 10_000
# Under gRPC's default 4 MiB a client accepts.
FUNCTIONS_REPLY_CAP = 3 << 20


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
        if size > FUNCTIONS_REPLY_CAP:  # C++ names can be long
            break
        functions.append(info)
    return pb.ListFunctionsResponse(functions=functions, truncated=len(functions) < len(found))


class AgentServicer(pb_grpc.AgentServiceServicer):
    def __init__(self, registry: ScriptRegistry, *, log: Callable[[str], None], policy: ProbePolicy, agent_id: str):
        self.registry, self.policy = registry, policy  # policy: the agent's --allow-probe rules
        self.agent_id = agent_id  # `coral agent start --id`, by default the hostname
        self._log = log  # the agent's one-line log (agent_main.log)

    def _call(self, context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except InvalidScript as e:
            abort(context, e)
        except CoralError as e:  # e.g. "the agent is stopping": the request was fine, the moment not
            abort(context, e, default=grpc.StatusCode.FAILED_PRECONDITION)
        raise AssertionError("unreachable")  # context.abort raises

    # -- RPCs -------------------------------------------------------------

    def DeployScript(self, request: Any, context: grpc.ServicerContext) -> Any:
        script = request.script
        if script.timeout_seconds < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"invalid timeout {script.timeout_seconds}s: must be above 0 (0: the mode's default)")

        def deploy() -> Any:
            deployed = self.registry.deploy(
                name=script.name, code=script.code, params=dict(script.params),
                daemon=script.mode == pb.SCRIPT_MODE_DAEMON,
                timeout_s=float(script.timeout_seconds) or None, created_by=script.created_by,
                trigger=_trigger(script.trigger))
            record = self.registry.status(deployed.script_id, tail=0).script
            self._log(f"deployed {record.name} version {deployed.version} as {deployed.script_id} "
                      f"({record.status}, by {record.created_by or 'unknown'})")
            return pb.DeployScriptResponse(script_id=deployed.script_id, version=deployed.version,
                                           status=_status(record.status), deployed_to=[self.agent_id],
                                           replaced_script_id=deployed.replaced_script_id or "")
        return self._call(context, deploy)

    def StopScript(self, request: Any, context: grpc.ServicerContext) -> Any:
        def stop() -> Any:
            record = self.registry.stop(_ref(request.ref, request.script_id))
            self._log(f"stopped {record.name} version {record.version} ({record.id})")
            return pb.StopScriptResponse(success=True, script_id=record.id, status=_status(record.status))
        return self._call(context, stop)

    def DeleteScript(self, request: Any, context: grpc.ServicerContext) -> Any:
        def delete() -> Any:
            ref = _ref(request.ref, "")
            before = {r.id for r in self.registry.list("deleted")}
            self.registry.delete(ref)
            ids = sorted({r.id for r in self.registry.list("deleted")} - before)
            self._log(f"deleted {ref} ({', '.join(ids) or 'nothing new'})")
            return pb.DeleteScriptResponse(success=True, script_ids=ids)
        return self._call(context, delete)

    def ListScripts(self, request: Any, context: grpc.ServicerContext) -> Any:
        def list_() -> Any:
            records = self.registry.list(_FILTER.get(request.status), all_versions=request.all_versions)
            return pb.ListScriptsResponse(scripts=[_script(r) for r in records])
        return self._call(context, list_)

    def GetScriptStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        def status() -> Any:
            got = self.registry.status(_ref(request.ref, request.script_id),
                                       tail=_tail(request.tail, DEFAULT_STATUS_TAIL))
            return pb.GetScriptStatusResponse(
                script_id=got.script.id, status=_status(got.script.status), script=_script(got.script),
                executions=[_execution(e, got.script.id, self.registry.execution_output(e.execution_id))
                            for e in got.executions])
        return self._call(context, status)

    def StreamScriptLogs(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """ScriptLogBatch messages: what was stored at that moment (one message
        a line carried ~6k lines/s). A slow client loses nothing here (gRPC's
        flow control holds this generator; the lines wait in DuckDB). `lost`
        carries what the script's log limits dropped; an entry with no stream
        and no line counts those dropped after the execution's last line."""
        cancelled = threading.Event()
        context.add_callback(cancelled.set)  # the client went away, or the server stops
        batches = self._call(context, lambda: self.registry.log_batches(
            _ref(request.ref, request.script_id), tail=_tail(request.tail, DEFAULT_LOG_TAIL),
            follow=request.follow, stop_event=cancelled, execution_id=request.execution_id or None))
        # log_batches() is a generator: the ref is resolved at its first step.
        iterator = iter(batches)
        while True:
            batch = self._call(context, lambda: next(iterator, None))
            if batch is None:
                return
            yield from _log_messages(batch)

    def RunScript(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """`coral run` while this agent holds the store (run_service.py)."""
        yield from run_script(self.registry.executor, request, context, policy=self.policy, log=self._log)

    def ListFunctions(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return list_functions(request, self.policy, context)
        except CoralError as e:
            abort(context, e)

