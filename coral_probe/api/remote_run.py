"""`coral run SCRIPT --agent ADDR` and `coral run SCRIPT --colony ADDR
--targets SERVICE`: the script runs elsewhere, its lines come back here.

On one agent it is `coral run` through the agent serving this home
(run_client.py), at any address: same lines, same exit code. On a colony it
runs on every agent of SERVICE (colony/fleet_run.py); each line is prefixed
with its agent's id, and the exit code is 0 when every agent's script exited
0, else the first non-zero one, its agent named on stderr. Ctrl-C (SIGTERM)
cancels the call, which stops the script on every agent."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import grpc

from ..agent_client import AgentConnection
from ..errors import CoralError
from ..stopping import StopSignals
from ..terminal import safe_text
from . import cpb, cpb_grpc
from .run_client import RemoteRunner, cancel_when_asked, request_of


@dataclass(frozen=True)
class RemoteRun:
    script: Path
    params: dict[str, str]
    timeout_s: float
    daemon: bool
    pid: int | None
    binary: str | None


def run_on_agent(run: RemoteRun, agent: str, credentials: dict[str, str | None]) -> int:
    from ..agent.run import run_ended  # what a local run says and returns at its end

    request = _request(run)
    with StopSignals() as signals, RemoteRunner(agent, **credentials) as runner:
        ended = runner.run_once(request, signals)
        if ended is None:  # stopped from here: the agent ends it (streams, grace, probes detached)
            print(f"coral: script stopped: {signals.reason}", file=sys.stderr)
            return signals.exit_code
        return run_ended(*ended)


def run_on_colony(run: RemoteRun, colony: str, service: str, credentials: dict[str, str | None]) -> int:
    request = cpb.FleetRunRequest(run=_request(run), service=service)
    with StopSignals() as signals, AgentConnection(colony, role="colony", **credentials) as connection:
        call = cpb_grpc.ColonyServiceStub(connection.channel).RunScript(request)  # the runs' timeouts bound it
        finished = threading.Event()
        threading.Thread(target=cancel_when_asked, args=(call, signals, finished), name="coral-run-stop",
                         daemon=True).start()
        codes: dict[str, int] = {}  # by agent, in the order their runs ended
        heard = False
        try:
            for item in call:
                heard = True
                _show(item, codes)
        except grpc.RpcError as e:
            if signals.requested.is_set():
                pass
            elif heard and e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise CoralError(f"the colony at {connection.name} went away (stopped?); the scripts no longer run") \
                    from None
            else:
                raise connection.error(e) from None
        finally:
            finished.set()
            call.cancel()
    if signals.requested.is_set():
        print(f"coral: script stopped on every agent: {signals.reason}", file=sys.stderr)
        return signals.exit_code
    failed = [(agent_id, code) for agent_id, code in codes.items() if code != 0]
    if not failed:
        return 0
    others = f" (also non-zero: {', '.join(a for a, _ in failed[1:])})" if len(failed) > 1 else ""
    print(safe_text(f"coral: exit code {failed[0][1]} from agent {failed[0][0]}{others}"), file=sys.stderr)
    return failed[0][1]


def _request(run: RemoteRun) -> Any:
    return request_of(run.script, params=run.params, timeout_s=run.timeout_s, daemon=run.daemon, pid=run.pid,
                      binary=run.binary)


def _show(item: Any, codes: dict[str, int]) -> None:
    """One FleetRunOutput: a line prefixed with its agent, or how its run ended."""
    agent_id = item.agent_id
    if item.error:
        print(safe_text(f"coral: [{agent_id}] {item.error}"), file=sys.stderr, flush=True)
        codes[agent_id] = 1
        return
    which = item.output.WhichOneof("output")
    if which == "log":
        sink = sys.stdout if item.output.log.stream == "stdout" else sys.stderr
        print(safe_text(f"[{agent_id}] {item.output.log.line}"), file=sink, flush=True)
    elif which == "end":
        from ..agent.run import exit_code_of

        end = item.output.end
        if end.status in ("timeout", "stopped"):
            print(safe_text(f"coral: [{agent_id}] script stopped: {end.reason}"), file=sys.stderr, flush=True)
        codes[agent_id] = exit_code_of(end.status, end.exit_code if end.has_exit_code else None)


def run_remote(script: Path, *, agent: str | None, colony: str | None, targets: str | None, tls_ca: str | None,
               tls_cert: str | None, tls_key: str | None, token_file: str | None, params: dict[str, str],
               timeout_s: float | None, daemon: bool, pid: int | None, binary: str | None,
               local_only: dict[str, Any]) -> int:
    """`coral run` with --agent or --colony; `local_only`: the options that
    only a local run has (by name), refused here when given."""
    from ..agent.executor import AD_HOC_TIMEOUT_S, DAEMON_TIMEOUT_S
    from ..query_cli import check_address

    credentials = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key, "token_file": token_file}
    if agent is not None and colony is not None:
        raise click.UsageError("--agent and --colony exclude each other")
    if targets is not None and colony is None:
        raise click.UsageError("--targets goes with --colony")
    if agent is None and colony is None:
        given = next(f"--{k.replace('_', '-')}" for k, v in credentials.items() if v is not None)
        raise click.UsageError(f"{given} goes with --agent or --colony")
    if colony is not None and not targets:
        raise click.UsageError("--colony runs the script on the agents of a service: give --targets SERVICE")
    local = next((name for name, value in local_only.items() if value), None)
    if local:
        raise click.UsageError(f"{local} is for a local run: it does not go with {'--agent' if agent else '--colony'}")
    if not script.is_file():
        raise CoralError(f"script not found: {script}")
    run = RemoteRun(script=script, params=params, daemon=daemon, pid=pid, binary=binary,
                    timeout_s=timeout_s or (DAEMON_TIMEOUT_S if daemon else AD_HOC_TIMEOUT_S))
    if agent is not None:
        return run_on_agent(run, agent, credentials)
    assert colony is not None and targets  # refused above otherwise
    check_address(colony, "--colony")
    return run_on_colony(run, colony, targets, credentials)
