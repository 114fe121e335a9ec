"""ColonyService.RunScript: `coral run SCRIPT --colony ADDR --targets SERVICE`.

The script runs on every agent that knows SERVICE (its ListServices, asked
of the whole fleet), through each agent's own RunScript, all at once. Every
output of every agent is forwarded as it comes, tagged with the agent; an
agent that cannot run it (unreachable, its refusal, gone mid-run) gets one
FleetRunOutput with `error` instead, and the others go on. The client
cancelling (Ctrl-C) or going away cancels every agent's call, which stops
the script there."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from ..api import cpb, pb_grpc, qpb, qpb_grpc
from ..errors import CoralError, NotFound
from .fleet import Fleet

_ENDED = object()  # an agent's thread put its last output
_POLL_S = 0.5  # how often a quiet run checks that its client is still there


def run(fleet: Fleet, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
    from ..api.status import abort

    try:
        agents = _agents_of(fleet, request.service)
    except CoralError as e:
        abort(context, e)
    outputs: queue.SimpleQueue = queue.SimpleQueue()
    runs = _Runs()
    if not context.add_callback(runs.cancel_all):
        return
    for agent_id in agents:
        threading.Thread(target=_forward, args=(fleet, agent_id, request.run, runs, outputs),
                         name=f"coral-fleet-run-{agent_id}", daemon=True).start()
    try:
        running = len(agents)
        while running:
            try:
                item = outputs.get(timeout=_POLL_S)
            except queue.Empty:
                if not context.is_active():
                    return
                continue
            if item is _ENDED:
                running -= 1
            else:
                yield item
    finally:
        runs.cancel_all()


def _agents_of(fleet: Fleet, service: str) -> list[str]:
    """The agents that know `service`; NotFound, with the known services, if none does."""
    if not service:
        raise CoralError("a fleet run needs the service whose agents run it (--targets SERVICE)")
    answers = fleet.ask(lambda ch, timeout: qpb_grpc.QueryServiceStub(ch).ListServices(
        qpb.ListServicesRequest(), timeout=timeout))
    agents = [agent_id for agent_id, reply in answers.replies.items()
              if any(s.name == service for s in reply.services)]
    if agents:
        return agents
    known = sorted({s.name for reply in answers.replies.values() for s in reply.services})
    unheard = "".join(f"; no answer from {m.agent_id} ({m.reason})" for m in answers.missing)
    raise NotFound(f"unknown service {service!r}: no agent knows it (known: {', '.join(known) or 'none'}){unheard}")


class _Runs:
    """The agents' calls in flight, cancelled together when the fleet run ends."""

    def __init__(self):
        self._lock = threading.Lock()
        self._calls: list[Any] = []
        self.cancelled = False

    def add(self, call: Any) -> bool:
        """False once cancelled: the call is cancelled at once."""
        with self._lock:
            if not self.cancelled:
                self._calls.append(call)
                return True
        call.cancel()
        return False

    def cancel_all(self) -> None:
        with self._lock:
            self.cancelled = True
            calls, self._calls = self._calls, []
        for call in calls:
            call.cancel()


def _forward(fleet: Fleet, agent_id: str, run_request: Any, runs: _Runs, outputs: queue.SimpleQueue) -> None:
    """One agent's run: its outputs into `outputs`, then _ENDED."""
    ended = False
    try:
        # No deadline: the run's own timeout bounds it, in the agent.
        call = pb_grpc.AgentServiceStub(fleet.agents[agent_id].channel).RunScript(run_request)
        if not runs.add(call):
            return
        for output in call:
            outputs.put(cpb.FleetRunOutput(agent_id=agent_id, output=output))
            ended = ended or output.HasField("end")
        if not ended:
            outputs.put(cpb.FleetRunOutput(agent_id=agent_id, error="the agent ended the run without saying how"))
    except grpc.RpcError as e:
        if not runs.cancelled:
            outputs.put(cpb.FleetRunOutput(agent_id=agent_id, error=_reason(e)))
    finally:
        outputs.put(_ENDED)


def _reason(e: grpc.RpcError) -> str:
    code = e.code() if hasattr(e, "code") else None
    details = ((e.details() if hasattr(e, "details") else "") or "").strip()
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"unreachable or gone ({details.splitlines()[0] if details else 'unavailable'})"
    return details.splitlines()[0] if details else (code.name.lower() if code else "failed")
