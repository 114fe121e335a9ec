"""The client side of the agent's gRPC API shared by `coral script`, `coral mcp`,
`coral query sql` and `coral run` through an agent: the connection options,
one connection whose failures are one-line AgentErrors, the trigger a deploy
sends, and the replies as text and dicts.

Outside coral_probe/api on purpose: that package loads the generated messages
(protobuf) when imported, and cli.py imports this module for every command;
grpc and the messages are imported here only when a function needs them.
The agent decides every bound (trigger.py, registry.py): what is sent as 0
takes its default, and what it refuses comes back as its one line."""

from __future__ import annotations

from datetime import timezone
from typing import Any, Callable, Iterator, TypeVar

import click

from .errors import CoralError

DEPLOY_TIMEOUT_S = 300  # deploy runs `deno check` on the agent
CALL_TIMEOUT_S = 60
STATUS_FILTERS = ("all", "running", "stopped", "failed", "pending", "completed", "interrupted")
_INT32_MAX = 2**31 - 1  # the wire's seconds fields

T = TypeVar("T")


class AgentError(CoralError):
    """The agent refused (its message is the line) or could not be reached."""

    exit_code = 1


def connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--agent and its TLS/token options: the keyword arguments of AgentConnection."""
    options = [
        click.option("--agent", metavar="unix:PATH|HOST:PORT",
                     help="Agent to talk to [default: unix:$CORAL_HOME/agent.sock]."),
        click.option("--tls-ca", type=click.Path(dir_okay=False), metavar="PATH",
                     help="CA certificate that signed the agent's (TLS on HOST:PORT)."),
        click.option("--tls-cert", type=click.Path(dir_okay=False), metavar="PATH",
                     help="Client certificate (mutual TLS), with --tls-key."),
        click.option("--tls-key", type=click.Path(dir_okay=False), metavar="PATH",
                     help="Client private key, with --tls-cert."),
        click.option("--token-file", type=click.Path(dir_okay=False), metavar="PATH",
                     help="File holding the agent's bearer token."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


class AgentConnection:
    """One channel to the agent (or, `role="colony"`, to a colony: the same
    QueryService); RPC failures become one-line AgentErrors."""

    def __init__(self, agent: str | None = None, tls_ca: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, token_file: str | None = None, *, role: str = "agent"):
        from .api import client
        from .paths import coral_home

        home = coral_home()
        self.role = role
        self.name, _ = client.target(agent, home=home)
        self.channel = client.channel(agent, home=home, tls_ca=tls_ca, token_file=token_file,
                                      tls_cert=tls_cert, tls_key=tls_key)
        self.stub = client.stub(self.channel)

    def __enter__(self) -> "AgentConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()

    def call(self, method: str, request: Any, timeout: float | None = CALL_TIMEOUT_S) -> Any:
        """An AgentService call."""
        return self.rpc(lambda: getattr(self.stub, method)(request, timeout=timeout))

    def rpc(self, call: Callable[[], T]) -> T:
        """A call of any service on self.channel (QueryService too), its failure worded as the others."""
        import grpc

        try:
            return call()
        except grpc.RpcError as e:
            raise self.error(e) from None

    def stream(self, method: str, request: Any, timeout: float | None) -> Iterator[Any]:
        import grpc

        call = getattr(self.stub, method)(request, timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as e:
            raise self.error(e) from None
        finally:
            call.cancel()

    def error(self, e: Any) -> AgentError:
        import grpc

        code = e.code() if hasattr(e, "code") else None
        details = (e.details() if hasattr(e, "details") else None) or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            return AgentError(f"no {self.role} at {self.name} (start one with `coral {self.role} start`)")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and not details:
            details = "the agent did not answer in time"
        first = details.strip().splitlines()[0] if details.strip() else ""
        return AgentError(first or f"{self.name}: {code.name if code else 'RPC failed'}")


def local_user() -> str:
    """created_by of what this user deploys or runs on the agent."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (containers)
        import os

        return f"uid:{os.getuid()}"


# -- what is sent --------------------------------------------------------------

def wire_seconds(seconds: int) -> int:
    """Seconds as an int32 field carries them; 0 asks for the agent's default.
    Beyond int32 is beyond any bound of the agent, which refuses it by its own words."""
    return min(seconds, _INT32_MAX)


def every_seconds(every: str, *, option: str = "--every") -> int:
    """A check interval ("30s", "1.5m") in the wire's whole seconds, rounded up:
    a check never comes sooner than asked."""
    from .durations import parse_duration_ns

    ns = parse_duration_ns(every, option=option)
    if ns < 1_000_000_000:  # would go out as 0 (the default) or be rounded up many times over
        raise CoralError(f"invalid {option} '{every}': the agent checks between 1s and 24h")
    return -(-ns // 1_000_000_000)


def script_trigger(kind: str, *, cron: str | None = None, condition: str | None = None,
                   check_interval_s: int = 0) -> Any:  # a pb.ScriptTrigger
    """The trigger of a deploy: "manual", "schedule" (cron) or "event" (condition,
    checked every check_interval_s; 0: the agent's default). The agent checks the
    cron, the SQL and the interval; only a missing one is said here."""
    from .api import pb

    if kind == "schedule":
        if not (cron or "").strip():
            raise CoralError("a schedule trigger needs a cron expression")
        return pb.ScriptTrigger(schedule=pb.ScheduleTrigger(cron=cron))
    if kind == "event":
        if not (condition or "").strip():
            raise CoralError("an event trigger needs a condition (a read-only SQL query)")
        return pb.ScriptTrigger(event=pb.EventTrigger(condition=condition,
                                                      check_interval_seconds=wire_seconds(check_interval_s)))
    return pb.ScriptTrigger(manual=pb.ManualTrigger())


def status_filter(status: str) -> Any:  # a pb.ScriptStatus
    """A STATUS_FILTERS word as ListScriptsRequest.status."""
    from .api import pb

    if status == "all":
        return pb.SCRIPT_STATUS_UNSPECIFIED
    return pb.ScriptStatus.Value(f"SCRIPT_STATUS_{status.upper()}")


# -- what comes back -----------------------------------------------------------

def status_name(value: int) -> str:
    from .api import pb

    try:
        name = pb.ScriptStatus.Name(value)
    except ValueError:
        return f"status-{value}"
    return name.removeprefix("SCRIPT_STATUS_").lower()


def trigger_text(trigger: Any) -> str:
    kind = trigger.WhichOneof("trigger")
    if kind == "schedule":
        return f"cron {trigger.schedule.cron}"
    if kind == "event":
        return f"when (every {trigger.event.check_interval_seconds}s): {trigger.event.condition}"
    return "manual"


def trigger_dict(trigger: Any) -> dict[str, Any]:
    kind = trigger.WhichOneof("trigger")
    if kind == "schedule":
        return {"type": "schedule", "cron": trigger.schedule.cron}
    if kind == "event":
        return {"type": "event", "condition": trigger.event.condition,
                "check_interval_seconds": trigger.event.check_interval_seconds}
    return {"type": "manual"}


def iso(ts: Any) -> str:
    return ts.ToDatetime(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


def script_dict(s: Any) -> dict[str, Any]:
    from .api import pb

    return {"id": s.id, "name": s.name, "version": s.version, "status": status_name(s.status),
            "mode": "daemon" if s.mode == pb.SCRIPT_MODE_DAEMON else "ad-hoc",
            "timeout_seconds": s.timeout_seconds, "trigger": trigger_dict(s.trigger),
            "params": dict(s.params), "created_at": iso(s.created_at) if s.HasField("created_at") else None,
            "created_by": s.created_by, "targets": list(s.targets)}


def execution_dict(e: Any) -> dict[str, Any]:
    return {"execution_id": e.execution_id, "script_id": e.script_id, "agent_id": e.agent_id,
            "status": status_name(e.status),
            "started_at": iso(e.started_at) if e.HasField("started_at") else None,
            "completed_at": iso(e.completed_at) if e.HasField("completed_at") else None,
            "exit_code": e.exit_code if e.has_exit_code else None, "end_reason": e.end_reason or None,
            "stdout": e.stdout, "stderr": e.stderr,
            "events": [{"name": ev.name, "data": ev.data,
                        "timestamp": iso(ev.timestamp) if ev.HasField("timestamp") else None}
                       for ev in e.events]}
