"""`coral run` while an agent serves $CORAL_HOME: the script goes to the
agent (AgentService.RunScript), which holds the store and runs it in its own
sandbox; what comes back is printed as a local run prints it. A stop asked
here (Ctrl-C, SIGTERM) cancels the call, which stops the run in the agent."""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path
from typing import Any

import grpc

from ..agent_client import AgentError, local_user
from ..errors import CoralError
from ..stopping import StopSignals
from ..terminal import safe_text
from . import client, pb

# Trailing metadata of a refused RunScript (run_service.py): the exit code a
# local `coral run` has for the same refusal.
EXIT_CODE_KEY = "coral-exit-code"


class AgentRefused(CoralError):
    """The agent refused the run: its one line, with the exit code a local run gives."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class RemoteRunner:
    """One channel to an agent: the one serving this home (its socket, a
    Path), or `--agent ADDR` (unix:PATH or HOST:PORT, with the TLS/token
    options of agent_client.connection_options); for as many runs as --watch makes."""

    def __init__(self, agent: Path | str, *, tls_ca: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, token_file: str | None = None):
        from ..paths import coral_home

        self.address = f"unix:{agent}" if isinstance(agent, Path) else agent
        self.channel = client.channel(self.address, home=coral_home(), tls_ca=tls_ca, tls_cert=tls_cert,
                                      tls_key=tls_key, token_file=token_file)
        self.stub = client.stub(self.channel)

    def __enter__(self) -> "RemoteRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()

    def run_once(self, request: Any, signals: StopSignals) -> tuple[str, str, int | None] | None:
        """(status, reason, exit code) of the run, or None when a stop was asked here first."""
        call = self.stub.RunScript(request)  # no deadline: the run's own timeout bounds it
        finished = threading.Event()
        threading.Thread(target=cancel_when_asked, args=(call, signals, finished), name="coral-run-stop",
                         daemon=True).start()
        answered = False
        try:
            for output in call:
                answered = True
                which = output.WhichOneof("output")
                if which == "log":
                    sink = sys.stdout if output.log.stream == "stdout" else sys.stderr
                    print(safe_text(output.log.line), file=sink, flush=True)
                elif which == "end":
                    end = output.end
                    return end.status, end.reason, end.exit_code if end.has_exit_code else None
                # The execution id and the emits: stored by the agent; a local run does not print them.
        except grpc.RpcError as e:
            if signals.requested.is_set():
                return None
            raise self._error(e, answered) from None
        finally:
            finished.set()
            call.cancel()
        if signals.requested.is_set():
            return None
        raise CoralError(f"the agent at {self.address} ended the run without saying how it ended")

    def _error(self, e: grpc.RpcError, answered: bool) -> CoralError:
        code = e.code() if hasattr(e, "code") else None
        if code == grpc.StatusCode.UNAVAILABLE and not answered:
            return AgentError(f"no agent at {self.address} (start one with `coral agent start`)")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return CoralError(f"the agent at {self.address} went away (stopped?); the script no longer runs")
        details = (e.details() if hasattr(e, "details") else None) or str(code)
        trailing = dict(e.trailing_metadata() or ()) if hasattr(e, "trailing_metadata") else {}
        exit_code = trailing.get(EXIT_CODE_KEY, "")
        return AgentRefused(details, int(exit_code) if exit_code.isdigit() else CoralError.exit_code)


def request_of(script: Path, *, params: dict[str, str], timeout_s: float, daemon: bool,
               pid: int | None, binary: str | None) -> Any:
    try:
        code = script.read_bytes().decode()
    except UnicodeDecodeError:
        raise CoralError(f"script refused: {script.name} is not UTF-8 text") from None
    except OSError as e:
        raise CoralError(f"script refused: cannot read {script}: {e.strerror or e}") from None
    # Whole seconds on the wire: a fraction is rounded up, never to no time at all.
    return pb.RunScriptRequest(code=code, params=params, timeout_seconds=math.ceil(timeout_s),
                               mode=pb.SCRIPT_MODE_DAEMON if daemon else pb.SCRIPT_MODE_AD_HOC,
                               pid=pid or 0, binary=binary or "", name=script.name,
                               created_by=local_user())


def cancel_when_asked(call: Any, signals: StopSignals, finished: threading.Event) -> None:
    """The main thread is inside gRPC's wait for the next output: a stop
    asked is noticed here, and the call cancelled (the agent then stops the run)."""
    while not finished.is_set():
        if signals.requested.wait(0.1):
            call.cancel()
            return
