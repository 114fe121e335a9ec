"""`coral run SCRIPT.ts`: one script against a target, with its own agent,
or in the agent serving $CORAL_HOME when one runs (it holds the store)."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CoralError
from ..paths import coral_home, default_db_path, live_agent
from ..stopping import StopSignals
from ..store_opener import DeferredStore
from ..targets import LaunchedCommand, check_pid, command_program, resolve_binary
from .executor import AD_HOC_TIMEOUT_S, DAEMON_TIMEOUT_S
from .policy import ProbePolicy
from .runtime import AgentRuntime
from .subscriptions import AgentTarget

# A command waits for the script's first subscription, at most this long, so
# its first calls are seen; a script that never subscribes still gets it run.
COMMAND_HOLD_S = 5.0


@dataclass
class RunRequest:
    script: Path
    binary: str | None = None
    pid: int | None = None
    command: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    daemon: bool = False
    watch: bool = False
    db_path: Path | None = None
    policy: ProbePolicy = field(default_factory=ProbePolicy)


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CoralError(f"invalid --param '{pair}': expected KEY=VALUE")
        params[key] = value
    return params


def run_script(req: RunRequest) -> int:
    if not req.script.is_file():
        raise CoralError(f"script not found: {req.script}")
    if req.pid is not None and req.command:
        raise CoralError("--pid and -- COMMAND exclude each other")
    timeout = req.timeout_s or (DAEMON_TIMEOUT_S if req.daemon else AD_HOC_TIMEOUT_S)
    if not 0 < timeout <= DAEMON_TIMEOUT_S:
        raise CoralError(f"invalid --timeout {timeout:g}: must be above 0 and at most 86400 (24h)")
    if req.pid is not None:
        check_pid(req.pid)
    if req.binary is not None:
        # Fail now, with the CLI's message; a short name as the command will load it.
        resolve_binary(req.binary, req.pid, program=command_program(req.command) if req.command else None)
    agent_socket = None if req.db_path is not None else live_agent(coral_home())
    if agent_socket is not None:
        return _run_in_agent(agent_socket, req, timeout)
    store = DeferredStore(req.db_path or default_db_path())
    with StopSignals() as signals:
        try:
            with AgentRuntime(store, policy=req.policy) as agent:
                return _repeat(req, signals, lambda: _run_once(agent, req, timeout, signals))
        finally:
            store.close()


def _repeat(req: RunRequest, signals: StopSignals, run_once) -> int:
    """Once, or with --watch again at every change of the script, until a stop is asked."""
    while True:
        code = run_once()
        if signals.requested.is_set():
            return signals.exit_code
        if not req.watch:
            return code
        if not _wait_for_change(req.script, signals):
            return signals.exit_code


def _run_in_agent(socket: Path, req: RunRequest, timeout: float) -> int:
    """The agent holds the store: the script runs there, its output comes back here."""
    if req.command:
        raise CoralError("-- COMMAND does not go through the agent serving this home: start the command and "
                         "give --pid, or run without the agent (--db PATH)")
    if req.policy != ProbePolicy():
        raise CoralError("--allow-probe does not go through the agent serving this home: its own policy applies "
                         "(coral agent start --allow-probe); or run without the agent (--db PATH)")
    from ..api.run_client import RemoteRunner, request_of

    with StopSignals() as signals, RemoteRunner(socket) as agent:
        def run_once() -> int:
            request = request_of(req.script, params=req.params, timeout_s=timeout, daemon=req.daemon,
                                 pid=req.pid, binary=req.binary)
            ended = agent.run_once(request, signals)
            if ended is None:  # stopped from here: the agent ends it (streams, grace, probes detached)
                print(f"coral: script stopped: {signals.reason}", file=sys.stderr)
                return signals.exit_code
            return run_ended(*ended)
        return _repeat(req, signals, run_once)


def _run_once(agent: AgentRuntime, req: RunRequest, timeout: float, signals: StopSignals) -> int:
    launched = LaunchedCommand(req.command) if req.command else None
    try:
        # `--binary LIB -- CMD`: LIB as CMD loads it, only in CMD's process.
        target = AgentTarget(binary=req.binary or (launched.program if launched else None),
                             pid=launched.pid if launched else req.pid,
                             program=launched.program if launched else None)
        agent.subscriptions.first_subscription.clear()
        run = agent.executor.start(req.script, target=target, params=req.params, timeout_s=timeout)
        if launched:
            agent.subscriptions.wait_for_first(run.done, COMMAND_HOLD_S, signals.requested)
            launched.release()
        command_ended = False
        while not run.done.wait(0.02):
            if signals.requested.is_set():
                # Like a timeout: streams end, the script gets its grace
                # period; a second Ctrl-C kills it at once.
                agent.executor.stop(run, signals.reason or "interrupt", now=signals.count > 1)
            elif launched and not command_ended and launched.process.poll() is not None:
                # The command is gone: streams get their last events and end,
                # so the script's loops finish and its code after them runs.
                command_ended = True
                agent.subscriptions.end_all("command exited")
    except BaseException:
        agent.executor.kill_all()
        raise
    finally:
        if launched:
            launched.kill()
    return run_ended(run.status, run.reason, run.exit_code)


def run_ended(status: str, reason: str | None, exit_code: int | None) -> int:
    """What `coral run` says and returns at a run's end, local or in an agent."""
    if status in ("timeout", "stopped"):
        print(f"coral: script stopped: {reason}", file=sys.stderr)
    return exit_code_of(status, exit_code)


def exit_code_of(status: str, exit_code: int | None) -> int:
    """The exit code of `coral run` for a run that ended so (one agent's, in a fleet run too)."""
    if status == "timeout":
        return 124
    if exit_code is None:
        return 1
    # Killed by a signal (a limit, the store failing): the shell's 128 + signal.
    return 128 - exit_code if exit_code < 0 else exit_code


def _wait_for_change(script: Path, signals: StopSignals) -> bool:
    """True once the script changed; False when asked to stop first."""
    before = script.stat().st_mtime_ns
    print(f"coral: watching {script} for changes (Ctrl-C to stop)", file=sys.stderr)
    while script.stat().st_mtime_ns == before:
        if signals.requested.wait(0.2):
            return False
    return True
