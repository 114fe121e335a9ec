"""Runs scripts under Deno: sandbox, timeout, heap cap, concurrency limit,
output streamed to the terminal and stored, probes released at the end."""

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from ..errors import CoralError, ResourceExhausted
from ..store_opener import script_id_of
from .handlers import EMITS_PER_S, EmitLimits, ExecutionContext
from .log_pump import LINES_PER_S, LogBudget, pump
from .cgroups import ScriptCgroup
from .sandbox import Sandbox, new_script_uid
from .script_copy import ScriptCopy
from .subscriptions import AgentTarget

AD_HOC_TIMEOUT_S = 60.0
DAEMON_TIMEOUT_S = 24 * 3600.0
MAX_CONCURRENT = 5
STORE_WATCH_S = 0.2
# At a timeout or a stop, a script's streams end (last events, then an end
# frame) and it has this long to run the code after its loops and exit.
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class RunOutput:
    """Where one run's output goes instead of the agent's terminal (`coral run`
    through an agent streams it back): its lines as they would be shown, the
    agent's notices about it (limits, why it stopped) on `stderr`, and its
    emits as `on_emit(name, data_json)` once stored."""

    stdout: TextIO
    stderr: TextIO
    on_emit: Callable[[str, str], None]


@dataclass
class ScriptRun:
    execution_id: str
    script: Path
    process: subprocess.Popen
    token: str
    deadline: float
    timeout_s: float
    copy: ScriptCopy | None = None
    cgroup: ScriptCgroup | None = None
    status: str = "running"
    exit_code: int | None = None
    reason: str | None = None  # why it ended, when not by itself
    done: threading.Event = field(default_factory=threading.Event)
    # A stop asked from outside (Ctrl-C, an agent shutdown): (status, reason);
    # `_now` skips the grace period (a second Ctrl-C).
    _stop: tuple[str, str] | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _now: threading.Event = field(default_factory=threading.Event)
    logs: LogBudget = field(default_factory=LogBudget)
    emits: EmitLimits | None = None  # its ExecutionContext's
    output: RunOutput | None = None
    _log_threads: list[threading.Thread] = field(default_factory=list)
    _recorder: threading.Thread | None = None

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class Executor:
    def __init__(self, store, server, sandbox: Sandbox, end_streams: Callable[[str], None], *,
                 max_concurrent: int = MAX_CONCURRENT, echo: bool = True, grace_s: float = STOP_GRACE_S,
                 script_stdout: TextIO | None = None, log_lines_per_s: float = LINES_PER_S,
                 emits_per_s: float = EMITS_PER_S):
        """`end_streams(execution_id)` ends that run's probe streams: their last events, then an end frame.
        With `echo`, scripts' output is shown: stderr on stderr, stdout on `script_stdout` (default: stdout).
        `log_lines_per_s`: each run's stored log lines (log_pump.py); past it, lines are dropped and counted.
        `emits_per_s`: each run's emits (handlers.EmitLimits); past it, emits are refused and counted."""
        self.script_stdout = script_stdout
        self.log_lines_per_s, self.emits_per_s = log_lines_per_s, emits_per_s
        self.store, self.server, self.sandbox, self.end_streams = store, server, sandbox, end_streams
        self.grace_s = grace_s
        self.max_concurrent, self.echo = max_concurrent, echo
        self._running: dict[str, ScriptRun] = {}
        self._lock = threading.Lock()
        # Called with each run once it has ended and is recorded (the registry starts its queue).
        self.on_end: list[Callable[[ScriptRun], None]] = []

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def start(self, script: Path, *, target: AgentTarget, params: dict[str, str] | None = None,
              timeout_s: float = AD_HOC_TIMEOUT_S, script_id: str | None = None,
              output: RunOutput | None = None) -> ScriptRun:
        """`script_id`: a script the registry already recorded (else one is recorded by content);
        `output`: where this run's lines, notices and emits go (else the executor's echo)."""
        if not script.is_file():
            raise CoralError(f"script not found: {script}")
        if not 0 < timeout_s <= DAEMON_TIMEOUT_S:
            raise CoralError(f"invalid timeout {timeout_s:g}s: must be above 0 and at most 24h")
        script = script.resolve()
        self._check_capacity()
        execution_id = uuid.uuid4().hex[:16]
        # What is checked is what runs: the agent's own copy of the script.
        copy, code_bytes = self.sandbox.prepare(script, f"x{execution_id}")
        cgroup = None
        try:
            cgroup = ScriptCgroup.create(f"x{execution_id}", memory_bytes=self.sandbox.memory_mb << 20,
                                         max_pids=self.sandbox.max_pids)
            run = self._launch(script, copy, cgroup, code_bytes.decode(errors="replace"), execution_id,
                               target, params, timeout_s, script_id, output)
        except BaseException:
            self.sandbox.discard(copy)
            if cgroup is not None:
                cgroup.remove()
            raise
        return run

    def _check_capacity(self) -> None:
        """Called with the lock held, and once before the (slower) copy without."""
        if len(self._running) >= self.max_concurrent:
            raise ResourceExhausted(f"{self.max_concurrent} scripts are already running (the limit); "
                                    "wait for one to end")

    def _launch(self, script: Path, copy: ScriptCopy, cgroup: ScriptCgroup, code: str, execution_id: str,
                target: AgentTarget, params: dict[str, str] | None, timeout_s: float,
                registered_id: str | None = None, output: RunOutput | None = None) -> ScriptRun:
        with self._lock:
            self._check_capacity()
            token = secrets.token_hex(16)
            script_id = registered_id or script_id_of(code)
            ctx = ExecutionContext(execution_id, script_id, target, dict(params or {}),
                                   emits=EmitLimits(self.emits_per_s), on_emit=output.on_emit if output else None)
            self.server.register(token, ctx)
            command = self.sandbox.command(copy, new_script_uid(), cgroup.procs_files)
            process = self.sandbox.launch(command, env=self.sandbox.environment(token, copy),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          cwd=str(copy.directory), start_new_session=True)
            run = ScriptRun(execution_id, script, process, token, time.monotonic() + timeout_s, timeout_s, copy, cgroup,
                            logs=LogBudget(self.log_lines_per_s))
            run.emits, run.output = ctx.emits, output
            self._running[execution_id] = run
        # Recorded while Deno starts (the store may still be opening); the
        # supervisor waits for it before recording the end.
        recorder = threading.Thread(target=self._record_start,
                                    args=(run, None if registered_id else script.name, code, script_id, params),
                                    name="coral-record", daemon=True)
        recorder.start()
        run._recorder = recorder
        for stream in ("stdout", "stderr"):
            if output is not None:
                sink = getattr(output, stream)
            elif self.echo:
                sink = (self.script_stdout or sys.stdout) if stream == "stdout" else sys.stderr
            else:
                sink = None
            t = threading.Thread(target=pump, args=(getattr(process, stream), stream, execution_id, self.store,
                                                    run.logs, sink),
                                 name=f"coral-log-{stream}", daemon=True)
            t.start()
            run._log_threads.append(t)
        threading.Thread(target=self._supervise, args=(run,), name="coral-script", daemon=True).start()
        return run

    def _record_start(self, run: ScriptRun, name: str | None, code: str, script_id: str, params) -> None:
        """Records the start, then watches the store while the script runs: a
        run whose store failed is stopped and says why, never left hanging."""
        try:
            if name is not None:  # None: recorded by the registry
                self.store.register_script(name, code)
            self.store.begin_execution(run.execution_id, script_id, dict(params or {}))
            while run.process.poll() is None and self.store.failure is None:
                time.sleep(STORE_WATCH_S)
            if self.store.failure is None:
                return
            reason = self.store.failure
        except CoralError as e:  # the store did not open, or a write failed
            reason = str(e)
        if run.process.poll() is None:
            self.kill(run, "failed")
            run.reason = reason
            self._notice(run, f"coral: script stopped: {reason}")

    @staticmethod
    def _notice(run: ScriptRun, line: str) -> None:
        print(line, file=run.output.stderr if run.output else sys.stderr, flush=True)

    def kill(self, run: ScriptRun, status: str = "killed") -> None:
        if run.process.poll() is None:
            run.status = status
            os.killpg(run.process.pid, signal.SIGKILL)
        if run.cgroup is not None:
            run.cgroup.kill()

    def stop(self, run: ScriptRun, reason: str, *, now: bool = False) -> None:
        """Ends the run the way a timeout does: streams end, then the grace
        period, then a kill. `now` (e.g. a second Ctrl-C) skips the grace."""
        if run._stop is None:
            run._stop = ("stopped", reason)
            run._stopping.set()
        if now:
            run._now.set()

    def stop_all(self, reason: str) -> None:
        with self._lock:
            runs = list(self._running.values())
        for run in runs:
            self.stop(run, reason)
        for run in runs:
            run.wait(self.grace_s + 10)

    def kill_all(self) -> None:
        with self._lock:
            runs = list(self._running.values())
        for run in runs:
            self.kill(run)
        for run in runs:
            run.wait(10)

    @staticmethod
    def _wait(run: ScriptRun, until: float, wake: threading.Event) -> int | None:
        """The exit code, or None at `until` or once `wake` is set."""
        while True:
            code = run.process.poll()
            if code is not None:
                return code
            remaining = until - time.monotonic()
            if remaining <= 0 or wake.is_set():
                return None
            wake.wait(min(0.05, remaining))

    def _wind_down(self, run: ScriptRun) -> int:
        """The run's time is up or it was asked to stop: its streams end, its
        loops finish and the code after them runs; killed after the grace."""
        status, reason = run._stop or ("timeout", f"timeout ({run.timeout_s:g}s)")
        try:
            self.end_streams(run.execution_id)
        except Exception as e:  # noqa: BLE001 - the grace period and the kill still follow
            print(f"coral: ending the script's streams failed: {e}", file=sys.stderr, flush=True)
        code = self._wait(run, time.monotonic() + self.grace_s, run._now)
        if code is None:
            self.kill(run, status)
            code = run.process.wait()
            ended = "killed" if run._now.is_set() else f"killed after the {self.grace_s:g}s grace period"
        else:
            ended = f"ended within the {self.grace_s:g}s grace period"
        if run.status == "running":
            run.status = status
        run.reason = run.reason or f"{reason}, {ended}"
        return code

    def _supervise(self, run: ScriptRun) -> None:
        code = self._wait(run, run.deadline, run._stopping)
        if code is None:
            code = self._wind_down(run)
        run._recorder.join()
        for t in run._log_threads:
            t.join(timeout=5)
        limit = run.cgroup.limit_hit() if run.cgroup else None
        if limit and run.status in ("running", "killed", "stopped", "timeout"):
            run.status, run.reason = "failed", limit
            self._notice(run, f"coral: script stopped: {limit}")
        if run.status == "running":
            run.status = "completed" if code == 0 else "failed"
        run.exit_code = code
        self.server.unregister(run.token)
        if run.copy is not None:  # first: its scratch pages are charged to the cgroup
            self.sandbox.discard(run.copy)
        if run.cgroup is not None:
            run.cgroup.remove()
        limits = {**asdict(run.logs.counts), "emits_refused": run.emits.refused if run.emits else 0}
        if (self.echo or run.output) and any(limits.values()):
            self._notice(run, "coral: the script went past its limits: " + ", ".join(
                f"{n} {column.replace('_', ' ')}" for column, n in limits.items() if n)
                + " (counted in script_executions)")
        try:
            self.store.end_execution(run.execution_id, run.status, code, reason=run.reason, limits=limits)
        except CoralError as e:
            if run.reason is None:  # else said when the run was stopped
                print(f"coral: the script's end was not recorded: {e}", file=sys.stderr, flush=True)
        finally:
            with self._lock:
                self._running.pop(run.execution_id, None)
            run.done.set()
            for callback in list(self.on_end):
                try:
                    callback(run)
                except Exception as e:  # noqa: BLE001 - one listener's failure is not the run's
                    print(f"coral: after the script's end: {e}", file=sys.stderr, flush=True)
