"""AgentService.RunScript: `coral run` while an agent holds the store. The
script runs in the agent's own executor (its sandbox, limits, probe policy,
and its cap on running scripts) and is recorded like a local run; its lines,
the agent's notices about it and its emits stream back as they happen, then
how it ended. The call ending early (the client cancelled or went away, the
server stopping) stops the run: streams end, the grace period, probes
detached. Over TCP a client names only the targets the agent's
--allow-probe rules allow (client_targets.py).

The code arrives as one file: it may import only @coral/sdk. Refusals are
the local run's message with INVALID_ARGUMENT (NOT_FOUND for a missing pid
or binary, PERMISSION_DENIED for a target a TCP client may not name,
RESOURCE_EXHAUSTED at the cap, FAILED_PRECONDITION when the host cannot run
it); the trailing metadata `coral-exit-code` carries the exit code the same
refusal has in a local `coral run`."""

from __future__ import annotations

import io
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..agent.executor import AD_HOC_TIMEOUT_S, DAEMON_TIMEOUT_S, Executor, RunOutput, ScriptRun
from ..agent.policy import ProbePolicy
from ..agent.registry import MAX_CODE_BYTES
from ..agent.script_copy import SCRIPT_SUFFIXES
from ..agent.subscriptions import AgentTarget
from ..errors import CoralError, EnvironmentProblem
from .status import status_code
from ..targets import check_pid, resolve_binary
from . import pb
from .client_targets import check_client_target
from .run_client import EXIT_CODE_KEY

DEFAULT_NAME = "coral-run"
NAME_MAX = 255  # bytes of a file name (Linux)
POLL_S = 0.05
CALL_ENDED = "its `coral run` call ended (the client stopped or went away, or the agent stops)"


def run_script(executor: Executor, request: Any, context: grpc.ServicerContext, *,
               policy: ProbePolicy, log: Callable[[str], None]) -> Iterator[Any]:
    """The RunScript stream: the execution id, then its lines and emits as
    they come, then a RunScriptEnd. `policy`: the agent's --allow-probe rules;
    `log`: the agent's log, which escapes the client's strings in a line."""
    try:
        check_client_target(policy, context, binary=request.binary, pid=request.pid or None)
        name, target, timeout_s = _checked(request)
    except CoralError as e:
        _abort(context, e)
    outputs: queue.SimpleQueue = queue.SimpleQueue()
    started: list[ScriptRun] = []
    ended = threading.Event()

    def call_ended() -> None:  # the client cancelled or went away, the server stops, or the end was sent
        ended.set()
        if started and not started[0].done.is_set():
            executor.stop(started[0], CALL_ENDED)

    if not context.add_callback(call_ended):
        return
    run = _start(executor, request, name, target, timeout_s, outputs, context)
    started.append(run)
    log(f"running {name} as execution {run.execution_id} for `coral run` "
        f"(by {request.created_by or 'unknown'})")
    try:
        if ended.is_set():  # cancelled while it started: its callback came before the run existed
            return
        yield pb.RunScriptOutput(execution_id=run.execution_id)
        while not ended.is_set():
            try:
                item = outputs.get(timeout=POLL_S)
            except queue.Empty:
                if run.done.is_set():  # everything it printed was queued before
                    yield pb.RunScriptOutput(end=pb.RunScriptEnd(
                        status=run.status, exit_code=run.exit_code or 0,
                        has_exit_code=run.exit_code is not None, reason=run.reason or ""))
                    return
                continue
            if item.HasField("log"):
                item.log.execution_id = run.execution_id
            yield item
    finally:
        if not run.done.is_set():
            executor.stop(run, CALL_ENDED)


def _checked(request: Any) -> tuple[str, AgentTarget, float]:
    """(file name, target, timeout) of a request, or the one-line refusal a local run gives."""
    name = request.name or DEFAULT_NAME
    if "/" in name or "\0" in name or name.startswith("."):
        raise CoralError(f"invalid name {name!r}: a file name, e.g. check.ts")
    if Path(name).suffix not in SCRIPT_SUFFIXES:
        name += ".ts"
    if len(name.encode()) > NAME_MAX:
        raise CoralError(f"invalid name: a file name has at most {NAME_MAX} bytes with its suffix, "
                         f"this one {len(name.encode())}")
    size = len(request.code.encode())
    if size > MAX_CODE_BYTES:
        raise CoralError(f"script refused: its code is {size} bytes, over the {MAX_CODE_BYTES >> 20} MiB "
                         "limit of a script run through the agent")
    daemon = request.mode == pb.SCRIPT_MODE_DAEMON
    timeout = float(request.timeout_seconds) or (DAEMON_TIMEOUT_S if daemon else AD_HOC_TIMEOUT_S)
    if not 0 < timeout <= DAEMON_TIMEOUT_S:
        raise CoralError(f"invalid --timeout {timeout:g}: must be above 0 and at most 86400 (24h)")
    pid = request.pid or None
    if pid is not None:
        check_pid(pid)
    if request.binary:
        resolve_binary(request.binary, pid)
    return name, AgentTarget(binary=request.binary or None, pid=pid), timeout


def _start(executor: Executor, request: Any, name: str, target: AgentTarget, timeout_s: float,
           outputs: queue.SimpleQueue, context: grpc.ServicerContext) -> ScriptRun:
    # The executor copies what it checks and runs; this file is only its source.
    source = Path(tempfile.mkdtemp(prefix="r", dir=executor.sandbox.runtime_dir))
    try:
        (source / name).write_text(request.code, encoding="utf-8")
        return executor.start(source / name, target=target, params=dict(request.params), timeout_s=timeout_s,
                              output=RunOutput(stdout=_lines("stdout", outputs), stderr=_lines("stderr", outputs),
                                               on_emit=lambda n, data: outputs.put(_emit(n, data))))
    except CoralError as e:
        _abort(context, _one_file(e, source))
    except OSError as e:
        _abort(context, EnvironmentProblem(f"cannot write the script into the agent's runtime directory: "
                                           f"{e.strerror or e}"))
    finally:
        shutil.rmtree(source, ignore_errors=True)
    raise AssertionError("unreachable")  # context.abort raises


class _Lines(io.TextIOBase):
    """One stream of a run as the log pump shows it (print: the line, then
    "\\n"): each line becomes a RunScriptOutput."""

    def __init__(self, stream: str, outputs: queue.SimpleQueue):
        self._stream, self._outputs, self._partial = stream, outputs, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            entry = pb.ScriptLogEntry(stream=self._stream, line=line)
            entry.timestamp.CopyFrom(_now())
            self._outputs.put(pb.RunScriptOutput(log=entry))
        return len(text)


def _lines(stream: str, outputs: queue.SimpleQueue) -> TextIO:
    return cast(TextIO, _Lines(stream, outputs))  # all the log pump uses of a TextIO: print()


def _emit(name: str, data: str) -> Any:
    return pb.RunScriptOutput(emit=pb.ScriptEvent(name=name, data=data, timestamp=_now()))


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _one_file(error: CoralError, source: Path) -> CoralError:
    """A local import fails in the agent as a missing file of its temporary
    directory: say what it is instead."""
    found = re.search(r"it imports (\S+), which does not exist", str(error))
    if found is None or not found.group(1).startswith(f"{source}/"):
        return error
    imported = found.group(1)[len(f"{source}/"):]
    return CoralError(f"script refused: it imports ./{imported}; a script run through the agent is one file "
                      "that may import only @coral/sdk (or run it without the agent: --db PATH)")


def _abort(context: grpc.ServicerContext, error: CoralError) -> None:
    context.set_trailing_metadata(((EXIT_CODE_KEY, str(error.exit_code)),))
    # Whole, as a local run has it: the client shows its line breaks escaped, on one line.
    context.abort(status_code(error), str(error).strip() or type(error).__name__)
