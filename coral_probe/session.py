"""One `coral probe attach`: attach, stream batches to the store and the
view, stop on the first of duration / command exit / process exit / signal,
then detach, drain every committed event and account for each one."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import _native
from .accounting import Accounting
from .attach import Attachment, require_privileges
from .clock import monotonic_to_epoch_offset_ns
from .errors import CoralError
from .output import JsonlView, Snapshot, TableView
from .paths import coral_home, default_db_path, live_agent
from .plan import Plan, ProbeOptions, load_kernel_functions, plan_functions, plan_tracepoints
from .services import ServiceMap, check_name
from .stopping import StopSignals
from .store import ProbeSessionInfo, Store
from .targets import LaunchedCommand, Target, check_pid, resolve_binary, resolve_pid

if TYPE_CHECKING:
    from .agent.subscriptions import AgentTarget
    from .api.remote_store import AgentStore


@dataclass
class AttachRequest:
    functions: list[str] = field(default_factory=list)
    kernel_functions: list[str] = field(default_factory=list)
    tracepoints: list[str] = field(default_factory=list)
    usdt: list[str] = field(default_factory=list)  # PROVIDER:NAME markers (coral_probe/usdt.py)
    binary: str | None = None
    pid: int | None = None
    command: list[str] = field(default_factory=list)
    options: ProbeOptions = field(default_factory=ProbeOptions)
    duration_s: float | None = None
    output: str = "table"
    db_path: Path | None = None
    dump_bpf: bool = False
    script: Path | None = None
    service: str | None = None  # the session's service (services.py); None: its binary's

    def validate(self) -> None:
        kinds = sum(bool(x) for x in (self.functions, self.kernel_functions, self.tracepoints, self.usdt))
        if kinds == 0:
            raise CoralError("nothing to probe: name a FUNCTION, --kernel FUNCTION, --tracepoint CATEGORY:NAME "
                             "or --usdt PROVIDER:NAME")
        if kinds > 1:
            raise CoralError("probe user functions, --kernel functions, --tracepoints or --usdt markers, "
                             "one kind per session")
        has_target = self.binary is not None or self.pid is not None or bool(self.command)
        if (self.functions or self.usdt) and not has_target:
            raise CoralError("no target: give --binary PATH, --pid PID or -- COMMAND [ARGS]")
        if self.pid is not None and self.command:
            raise CoralError("--pid and -- COMMAND exclude each other")
        if self.script is not None and not self.script.is_file():
            raise CoralError(f"script not found: {self.script}")
        if self.output not in ("table", "jsonl"):
            raise CoralError(f"invalid --output {self.output}: table or jsonl")
        if self.service is not None:
            check_name(self.service, "--service")


def _plan(req: AttachRequest, target: Target | None, pid: int | None,
          program: str | None = None) -> tuple[Plan, Attachment | None]:
    if req.usdt:
        from .usdt import plan_usdt

        return plan_usdt(req.usdt, req.options, binary=target, pid=pid, program=program), None
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
    agent_home = _recording_agent(req)
    launched: LaunchedCommand | None = None
    streamed = False
    # From here a signal is a request to stop: one during the compile stops
    # the session as soon as it is attached, cleanly, instead of tearing it.
    with StopSignals() as signals:
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
                    target = resolve_binary(req.binary, launched.pid, program=launched.program)
                elif req.binary is not None:
                    target = resolve_binary(req.binary, req.pid)
                else:
                    target = resolve_pid(req.pid)
            elif req.usdt and req.binary is not None:
                # Without --binary, USDT markers are looked for in every file of the target (usdt.py).
                target = resolve_binary(req.binary, launched.pid if launched else req.pid,
                                        program=launched.program if launched else None)
            elif req.pid is not None:
                check_pid(req.pid)
            pid = launched.pid if launched else req.pid
            plan, attachment = _plan(req, target, pid, launched.program if launched else None)
            if req.dump_bpf:
                print(plan.program.dump())
                return 0
            if attachment is None:
                if signals.requested.is_set():  # before anything was attached: nothing to account
                    return signals.exit_code
                if sys.stderr.isatty():  # the ~1 s before the first line is bcc's clang/LLVM compile
                    print("coral: compiling the BPF program...", file=sys.stderr, flush=True)
                attachment = plan.load()
            streamed = True
            return _stream(req, plan, attachment, launched, target, pid, signals, agent_home)
        finally:
            # A command that was never streamed (a failure, a stop before the
            # attach) must not run on unprobed: _stream ends the others.
            if launched and (not streamed or sys.exc_info()[0] is not None):
                launched.kill()


def _recording_agent(req: AttachRequest) -> Path | None:
    """The home whose running agent records the session: it holds the
    database file, so without --db the session goes through it."""
    if req.db_path is not None or req.dump_bpf:
        return None
    home = coral_home()
    if live_agent(home) is None:
        return None
    if req.script:
        raise CoralError("an agent is running on this home: run the script through it with `coral run` "
                         "or `coral script deploy` (or give --db PATH)")
    return home


def _listed(names: list[str], shown: int = 8) -> str:
    """A wildcard may select thousands: the first few, then how many more."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown:,} more"


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _stream(req: AttachRequest, plan: Plan, attachment: Attachment, launched: LaunchedCommand | None,
            target: Target | None, pid: int | None, signals: StopSignals, agent_home: Path | None) -> int:
    db_path = req.db_path or default_db_path()
    info = ProbeSessionInfo(
        probe_type=plan.probe_type, target=plan.target, pid=pid, functions=plan.names, nargs=plan.nargs,
        options={"ret": req.options.with_return, "args": req.options.nargs,
                 "min_duration_ns": req.options.min_duration_ns, "sample": req.options.sample},
        # Recorded by an agent, the agent names an unnamed session from its --service names.
        service=req.service if agent_home else ServiceMap().session_service(req.service, plan.target, pid),
        binary=target.path if target is not None else None)
    store: Store | AgentStore
    agent_store: AgentStore | None = None
    try:
        if agent_home is not None:
            from .api import remote_store  # gRPC only when an agent records the session

            store = agent_store = remote_store.AgentStore(agent_home)
        else:
            store = Store(db_path)
        session_id = store.begin_probe_session(info)
    except BaseException:
        attachment.detach()
        raise
    writer = store.probe_event_writer(session_id, info)
    # Python takes batches every 50 ms (flush_ms): polling the ring every 1 ms
    # (~20 ms of CPU per second, idle or not) only serves scripts' latency.
    consumer = _native.RingConsumer(attachment.ringbuf_fd, plan.names, [plan.nargs] * len(plan.names),
                                    monotonic_to_epoch_offset_ns(), poll_ms=1 if req.script else 10)
    title = f"coral probe: {', '.join(plan.names[:4])}{' ...' if len(plan.names) > 4 else ''} in {plan.target}"
    view = JsonlView() if req.output == "jsonl" else TableView(title, plan.names, plan.nargs, plan.notes)
    started = time.monotonic()
    rate_window: list[tuple[float, int]] = []

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
    script_agent = None
    if req.script:
        from .agent.subscriptions import AgentTarget

        assert isinstance(store, Store)  # refused with an agent (_recording_agent)
        # A --pid without --binary is no binary: the script's probes search the
        # process's libraries too, as with `coral run --pid`.
        script_target = AgentTarget(binary=target.path if target and (req.binary or launched) else None, pid=pid,
                                    program=launched.program if launched else None)
        script_agent = _ScriptAgent(req, store, plan, consumer, script_target)
    if req.output == "jsonl":
        probes = _counted(attachment.attached, "probe")
        print(f"coral: attached {probes} for {_listed(plan.names)} in {plan.target}"
              f"{f' (pid {pid})' if pid else ''}; session {session_id}"
              f"{' (recorded by the agent)' if agent_store else ''}", file=sys.stderr, flush=True)
    try:
        with view:
            if script_agent:
                script_agent.wait_for_subscription(signals.requested)
            if launched:
                launched.release()
            # --duration counts from here, once a command runs; the rate, from the attach.
            deadline = time.monotonic() + req.duration_s if req.duration_s is not None else None
            next_tick = 0.0
            while True:
                if signals.requested.is_set():
                    stop_reason = signals.reason or "interrupt"
                    break
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    stop_reason = "duration"
                    break
                if launched and launched.process.poll() is not None:
                    stop_reason = "command exited"
                    break
                if not launched and pid is not None and not os.path.exists(f"/proc/{pid}"):
                    stop_reason = "process exited"
                    break
                if script_agent and script_agent.finished():
                    stop_reason = "script ended"
                    break
                if now >= next_tick:
                    counters = attachment.counters()
                    view.tick(snapshot())
                    writer.flush_due()  # rows that waited FLUSH_AFTER_S for their row group
                    next_tick = now + 0.25
                wait_ms = 100 if deadline is None else max(1, min(100, int((deadline - now) * 1000) + 1))
                batch = consumer.poll(wait_ms)
                if batch is not None:
                    take(batch)
            # The instant of the stop: the programs count and send nothing more.
            # Then detach (slow here: ~0.1 s per uprobe), and only then read the
            # counters, once no program can still be running.
            attachment.stop_counting()
            stopped = time.monotonic()
            attachment.detach_probes()
            counters = attachment.counters()
            consumer.stop()
            while not consumer.closed:
                batch = consumer.poll(100)
                if batch is not None:
                    take(batch)
            accounting = Accounting.of(counters, consumer.stats()["events"])
            store.end_probe_session(session_id, accounting, stop_reason)
            final = snapshot()
            final.elapsed_s = stopped - started
            final.rate = final.events / final.elapsed_s if final.elapsed_s > 0 else 0.0
            recorded = (agent_store.recorded(session_id) if agent_store
                        else f"{writer.rows} rows in {db_path} (session {session_id})")
            view.finish(final, accounting, recorded)
            if script_agent:
                script_agent.finish(stop_reason, signals)
    finally:
        if script_agent:
            script_agent.close()
        attachment.detach()
        store.close()
    return _command_exit_code(launched.process) if launched else 0


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

    def __init__(self, req: AttachRequest, store: Store, plan: Plan, consumer, target: "AgentTarget"):
        from .agent.policy import ProbePolicy, Rule
        from .agent.run import COMMAND_HOLD_S
        from .agent.runtime import AgentRuntime

        self.hold_s = COMMAND_HOLD_S
        # The operator named these probes: the script may attach them too.
        policy = ProbePolicy(tuple(Rule("kernel", name) for name in req.kernel_functions)
                             + tuple(Rule("tracepoint", name) for name in req.tracepoints))
        # In jsonl mode stdout is the session's JSON lines: the script prints on stderr.
        self.runtime = AgentRuntime(store, policy=policy,
                                    script_stdout=sys.stderr if req.output == "jsonl" else None).__enter__()
        try:
            self.runtime.subscriptions.adopt(plan, consumer)
            self.run = self.runtime.executor.start(req.script, target=target)
        except BaseException:
            self.runtime.__exit__(None, None, None)
            raise

    def wait_for_subscription(self, give_up) -> None:
        self.runtime.subscriptions.wait_for_first(self.run.done, self.hold_s, give_up)

    def finished(self) -> bool:
        return self.run.done.is_set()

    def finish(self, stop_reason: str, signals: StopSignals) -> None:
        """The session's streams have ended: the script finishes its own
        work, within the grace period (none after a second Ctrl-C)."""
        executor = self.runtime.executor
        if not self.run.done.is_set():
            executor.stop(self.run, stop_reason)
        while not self.run.wait(0.05):
            if signals.count > 1:
                executor.stop(self.run, stop_reason, now=True)
        if self.run.status == "stopped":
            print(f"coral: script stopped: {self.run.reason}", file=sys.stderr)

    def close(self) -> None:
        self.runtime.__exit__(None, None, None)
