"""QueryService on the colony: each call asked of every agent in parallel
(fleet.py), the answers merged; agents that did not answer are named in
`missing`."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..api import qpb, qpb_grpc
from .fleet import Fleet
from .store import ColonyStore


class ColonyQueryServicer(qpb_grpc.QueryServiceServicer):
    def __init__(self, fleet: Fleet, store: ColonyStore):
        self.fleet, self.store = fleet, store

    def ListAgents(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Every agent asked now: reachable or not, with when it last answered."""
        answers = self.fleet.ask(lambda ch, timeout: qpb_grpc.QueryServiceStub(ch).ListAgents(
            qpb.ListAgentsRequest(), timeout=timeout))
        for agent_id, reply in answers.replies.items():
            if reply.agents:
                self.fleet.note_identity(agent_id, reply.agents[0].version, reply.agents[0].hostname)
        agents = []
        for agent_id, state in self.fleet.agents.items():
            agent = qpb.Agent(id=agent_id, address=state.address.address, reachable=state.reachable,
                              version=state.version, hostname=state.hostname, error=state.error)
            if state.last_seen is not None:
                seen = Timestamp()
                seen.FromNanoseconds(int(state.last_seen * 1e9))
                agent.last_seen.CopyFrom(seen)
            agents.append(agent)
        return qpb.ListAgentsResponse(agents=agents)
