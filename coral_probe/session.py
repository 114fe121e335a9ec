"""One `coral probe attach`: attach, stream batches to the store and the
view, stop on the first of duration / command exit / process exit / signal,
then detach, drain every committed event and account for each one."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import _native
from .attach import Attachment, require_privileges
from .clock import monotonic_to_epoch_offset_ns
from .errors import CoralError
from .output import JsonlView, Snapshot, TableView
from .paths import default_db_path
from .plan import Plan, ProbeOptions, load_kernel_functions, plan_functions, plan_tracepoints
from .stopping import StopRequested, raise_on_sigterm
from .store import ProbeSessionInfo, Store
from .targets import LaunchedCommand, Target, check_pid, resolve_binary, resolve_pid


@dataclass
class AttachRequest:
    functions: list[str] = field(default_factory=list)
    kernel_functions: list[str] = field(default_factory=list)
    tracepoints: list[str] = field(default_factory=list)
    binary: str | None = None
    pid: int | None = None
    command: list[str] = field(default_factory=list)
    options: ProbeOptions = field(default_factory=ProbeOptions)
    duration_s: float | None = None
    output: str = "table"
    db_path: Path | None = None
    dump_bpf: bool = False
    script: Path | None = None

    def validate(self) -> None:
        kinds = sum(bool(x) for x in (self.functions, self.kernel_functions, self.tracepoints))
        if kinds == 0:
            raise CoralError("nothing to probe: name a FUNCTION, --kernel FUNCTION or --tracepoint CATEGORY:NAME")
        if kinds > 1:
            raise CoralError("probe user functions, --kernel functions or --tracepoints, one kind per session")
        has_target = self.binary is not None or self.pid is not None or bool(self.command)
        if self.functions and not has_target:
            raise CoralError("no target: give --binary PATH, --pid PID or -- COMMAND [ARGS]")
        if self.pid is not None and self.command:
            raise CoralError("--pid and -- COMMAND exclude each other")
        if self.script is not None and not self.script.is_file():
            raise CoralError(f"script not found: {self.script}")
        if self.output not in ("table", "jsonl"):
            raise CoralError(f"invalid --output {self.output}: table or jsonl")


def _plan(req: AttachRequest, target: Target | None, pid: int | None) -> tuple[Plan, Attachment | None]:
    if req.tracepoints:
        return plan_tracepoints(req.tracepoints, req.options, pid), None
    if req.kernel_functions:
        if req.dump_bpf:
            raise CoralError("--dump-bpf is for user functions and tracepoints")
        return load_kernel_functions(req.kernel_functions, req.options, pid)
    assert target is not None
    return plan_functions(target, req.functions, req.options), None


def run_attach(req: AttachRequest) -> int:
    req.validate()
    if not req.dump_bpf:
        require_privileges()
    launched: LaunchedCommand | None = None
    try:
        # The process filter: for a command, the child held before exec.
        if req.command:
            launched = LaunchedCommand(req.command, stdout=sys.stderr if req.output == "jsonl" else None)
        target = None
        if req.functions:
            if launched and req.binary is None:
                target = launched.target()
            elif launched:
                # e.g. `--binary libc -- ./app`: the library, filtered to the command
                target = replace(resolve_binary(req.binary), pid=launched.pid)
            elif req.binary is not None:
                target = resolve_binary(req.binary, req.pid)
            else:
                target = resolve_pid(req.pid)
        elif req.pid is not None:
            check_pid(req.pid)
        pid = launched.pid if launched else req.pid
        plan, attachment = _plan(req, target, pid)
        if req.dump_bpf:
            print(plan.program.dump())
            return 0
        if attachment is None:
            attachment = plan.load()
        return _stream(req, plan, attachment, launched, pid)
    finally:
        if launched:
            launched.release()
            if launched.process.poll() is None and sys.exc_info()[0] is not None:
                launched.kill()


def _stream(req: AttachRequest, plan: Plan, attachment: Attachment,
            launched: LaunchedCommand | None, pid: int | None) -> int:
    db_path = req.db_path or default_db_path()
    try:
        store = Store(db_path)
    except BaseException:
        attachment.detach()
        raise
    writer = store.begin_probe_session(ProbeSessionInfo(
        probe_type=plan.probe_type, target=plan.target, pid=pid, functions=plan.names, nargs=plan.nargs,
        options={"ret": req.options.with_return, "args": req.options.nargs,
                 "min_duration_ns": req.options.min_duration_ns, "sample": req.options.sample}))
    consumer = _native.RingConsumer(attachment.ringbuf_fd, plan.names, [plan.nargs] * len(plan.names),
                                    monotonic_to_epoch_offset_ns())
    title = f"coral probe: {', '.join(plan.names[:4])}{' ...' if len(plan.names) > 4 else ''} in {plan.target}"
    view = JsonlView() if req.output == "jsonl" else TableView(title, plan.names, plan.nargs, plan.notes)
    old_term = raise_on_sigterm()
    started = time.monotonic()
    rate_window: list[tuple[float, int]] = []
    exit_code = 0

    def snapshot() -> Snapshot:
        stats = consumer.stats()
        now = time.monotonic()
        rate_window.append((now, stats["events"]))
        while len(rate_window) > 2 and now - rate_window[0][0] > 1.0:
            rate_window.pop(0)
        t0, e0 = rate_window[0]
        rate = (stats["events"] - e0) / (now - t0) if now > t0 else 0.0
        return Snapshot(now - started, stats["events"], rate, counters, stats)

    def take(batch) -> None:
        cols = batch.columns()  # copied out of Rust once, for the store and the view
        writer.append(batch, cols)
        view.on_batch(batch, cols)

    counters = attachment.counters()
    script_agent = _ScriptAgent(req, store, plan, consumer, pid) if req.script else None
    if req.output == "jsonl":
        print(f"coral: attached {attachment.attached} probes for {', '.join(plan.names)} in {plan.target}"
              f"{f' (pid {pid})' if pid else ''}; session {writer.session_id}", file=sys.stderr, flush=True)
    try:
        with view:
            if script_agent:
                script_agent.wait_for_subscription()
            if launched:
                launched.release()
            next_tick = 0.0
            try:
                while True:
                    batch = consumer.poll(100)
                    if batch is not None:
                        take(batch)
                    now = time.monotonic()
                    if now >= next_tick:
                        counters = attachment.counters()
                        view.tick(snapshot())
                        next_tick = now + 0.25
                    if req.duration_s is not None and now - started >= req.duration_s:
                        break
                    if launched and launched.process.poll() is not None:
                        break
                    if not launched and pid is not None and not os.path.exists(f"/proc/{pid}"):
                        break
                    if script_agent and script_agent.finished():
                        break
            except (KeyboardInterrupt, StopRequested):
                pass
            # Detach first so nothing new arrives, then take every committed event.
            attachment.detach_probes()
            counters = attachment.counters()
            consumer.stop()
            while not consumer.closed:
                batch = consumer.poll(100)
                if batch is not None:
                    take(batch)
            final = snapshot()
            final.elapsed_s = time.monotonic() - started
            final.rate = final.events / final.elapsed_s if final.elapsed_s else 0.0
            writer.finish(counters)
            view.finish(final, f"{writer.rows} rows in {db_path} (session {writer.session_id})")
            if script_agent:
                script_agent.wait_for_script()
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if script_agent:
            script_agent.close()
        attachment.detach()
        store.close()
    if launched:
        exit_code = _command_exit_code(launched.process)
    return exit_code


def _command_exit_code(process: subprocess.Popen) -> int:
    """The command's own exit code; a command still running (coral stopped
    first: --duration, Ctrl-C) is asked to terminate, then killed."""
    if process.poll() is None:
        process.terminate()
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    return 128 - code if code < 0 else code


class _ScriptAgent:
    """`--script`: an in-process agent whose script joins this session's probes."""

    def __init__(self, req: AttachRequest, store: Store, plan: Plan, consumer, pid: int | None):
        from .agent.policy import ProbePolicy, Rule
        from .agent.run import COMMAND_HOLD_S
        from .agent.runtime import AgentRuntime
        from .agent.subscriptions import AgentTarget

        self.hold_s = COMMAND_HOLD_S
        # The operator named these probes: the script may attach them too.
        policy = ProbePolicy(tuple(Rule("kernel", name) for name in req.kernel_functions)
                             + tuple(Rule("tracepoint", name) for name in req.tracepoints))
        self.runtime = AgentRuntime(store, policy=policy).__enter__()
        try:
            self.runtime.subscriptions.adopt(plan, consumer)
            binary = plan.target if plan.probe_type == "uprobe" else None
            self.run = self.runtime.executor.start(req.script, target=AgentTarget(binary=binary, pid=pid))
        except BaseException:
            self.runtime.__exit__(None, None, None)
            raise

    def wait_for_subscription(self) -> None:
        self.runtime.subscriptions.wait_for_first(self.run.done, self.hold_s)

    def finished(self) -> bool:
        return self.run.done.is_set()

    def wait_for_script(self) -> None:
        """The session's streams have ended: the script finishes its own work."""
        self.run.wait()

    def close(self) -> None:
        self.runtime.__exit__(None, None, None)
