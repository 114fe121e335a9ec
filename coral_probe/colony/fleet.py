"""The colony's agents: who they are, how to reach them, and one call asked
of all of them at once.

Each call goes to every agent in parallel with the same per-agent deadline;
the answer is what came back in time. An agent that did not answer (down,
unreachable, past the deadline) is `missing`, named with the reason, and
never fails the whole fleet's answer; an agent that answered with an error
status (a refused query, an unknown service) is in `refused`, for the
merge to judge."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import grpc

from ..api import client, qpb
from ..errors import CoralError

T = TypeVar("T")

AGENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_DEADLINE_S = 2.0
# Codes that mean "no answer": the agent is not there (or not in time).
_UNANSWERED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                         grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNKNOWN,
                         grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL})


@dataclass(frozen=True)
class AgentAddress:
    id: str
    address: str  # unix:PATH or HOST:PORT, as --agent takes it


def parse_agents(specs: tuple[str, ...], agents_file: str | None) -> list[AgentAddress]:
    """`--agent ID=ADDR` values and the lines of `--agents-file` (ID=ADDR, `#` comments)."""
    lines = [(f"--agent {s}", s) for s in specs]
    if agents_file is not None:
        try:
            text = Path(agents_file).read_text()
        except OSError as e:
            raise CoralError(f"--agents-file {agents_file}: {e.strerror or e}") from None
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                lines.append((f"{agents_file}:{n}", line))
    agents: list[AgentAddress] = []
    seen: set[str] = set()
    for where, spec in lines:
        agent_id, sep, address = spec.partition("=")
        agent_id, address = agent_id.strip(), address.strip()
        if not sep or not address:
            raise CoralError(f"{where}: expected ID=ADDR (ADDR: unix:PATH or HOST:PORT)")
        if not AGENT_ID.fullmatch(agent_id):
            raise CoralError(f"{where}: agent id {agent_id!r}: letters, digits, '_', '.', '-' (at most 64)")
        if agent_id in seen:
            raise CoralError(f"{where}: agent {agent_id} is named twice")
        client.target(address, home=".")  # refuses a malformed address in one line
        seen.add(agent_id)
        agents.append(AgentAddress(agent_id, address))
    if not agents:
        raise CoralError("no agents: give --agent ID=ADDR (repeatable) or --agents-file FILE")
    return agents


@dataclass(frozen=True)
class Credentials:
    """How the colony authenticates to agents on TCP (as `coral script --agent` does)."""
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    token_file: str | None = None


@dataclass
class AgentState:
    """What the colony last heard from an agent (ListAgents)."""
    address: AgentAddress
    channel: grpc.Channel
    reachable: bool = False
    last_seen: float | None = None  # time.time() of its last answer
    version: str = ""
    hostname: str = ""
    error: str = ""


@dataclass
class Answers(Generic[T]):
    replies: dict[str, T] = field(default_factory=dict)            # by agent id, in the fleet's order
    refused: dict[str, grpc.RpcError] = field(default_factory=dict)  # answered with an error status
    missing: list = field(default_factory=list)                     # qpb.MissingAgent: no answer in time


def reason_of(e: grpc.RpcError, deadline_s: float) -> str:
    code = e.code() if hasattr(e, "code") else None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within {deadline_s:g}s"
    details = (e.details() if hasattr(e, "details") else "") or ""
    first = details.strip().splitlines()[0] if details.strip() else ""
    name = code.name.lower() if code is not None else "failed"
    return f"{name}: {first}" if first else name


class Fleet:
    def __init__(self, agents: list[AgentAddress], credentials: Credentials = Credentials(), *,
                 deadline_s: float = DEFAULT_DEADLINE_S, home: str | os.PathLike[str] = "."):
        self.deadline_s = deadline_s
        self.agents: dict[str, AgentState] = {}
        for a in agents:
            ch = client.channel(a.address, home=home, tls_ca=credentials.tls_ca, token_file=credentials.token_file,
                                tls_cert=credentials.tls_cert, tls_key=credentials.tls_key)
            self.agents[a.id] = AgentState(a, ch)
        self._lock = threading.Lock()
        # Every agent asked at once, whatever the calls in flight: one thread per agent per call.
        self._pool = ThreadPoolExecutor(max_workers=max(8, 4 * len(agents)), thread_name_prefix="coral-fleet")

    def ask(self, call: Callable[[grpc.Channel, float], T], *, only: set[str] | None = None,
            deadline_s: float | None = None) -> Answers[T]:
        """`call(channel, timeout_s)` on every agent (or those in `only`) in parallel."""
        deadline_s = self.deadline_s if deadline_s is None else deadline_s
        asked = [s for agent_id, s in self.agents.items() if only is None or agent_id in only]
        futures = {self._pool.submit(call, s.channel, deadline_s): s for s in asked}
        # gRPC enforces each call's deadline; this bound only guards a call that ignores it.
        wait(futures, timeout=deadline_s + 1.0)
        answers: Answers[T] = Answers()
        for future, state in futures.items():
            agent_id = state.address.id
            if not future.done():
                self._heard(state, error=f"no answer within {deadline_s:g}s")
                answers.missing.append(qpb.MissingAgent(agent_id=agent_id, reason=f"no answer within {deadline_s:g}s"))
                continue
            e = future.exception()
            if e is None:
                self._heard(state)
                answers.replies[agent_id] = future.result()
            elif isinstance(e, grpc.RpcError) and e.code() not in _UNANSWERED:
                self._heard(state)
                answers.refused[agent_id] = e
            else:
                reason = reason_of(e, deadline_s) if isinstance(e, grpc.RpcError) else f"failed: {e}"
                self._heard(state, error=reason)
                answers.missing.append(qpb.MissingAgent(agent_id=agent_id, reason=reason))
        return answers

    def _heard(self, state: AgentState, error: str = "") -> None:
        with self._lock:
            state.reachable, state.error = not error, error
            if not error:
                state.last_seen = time.time()

    def note_identity(self, agent_id: str, version: str, hostname: str) -> None:
        with self._lock:
            state = self.agents[agent_id]
            state.version, state.hostname = version, hostname

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for state in self.agents.values():
            state.channel.close()
