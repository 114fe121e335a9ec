"""The gRPC API: coral.agent.v1 (AgentService, ProbeService; `pb`), and
coral.colony.v1 (QueryService, served by every agent and by the colony,
`qpb`; ColonyService, the colony's own, `cpb`). transport.py serves them
(Unix socket, optional TCP with TLS or a bearer token), client.py dials them."""

from ..gen.coral.agent.v1 import agent_pb2 as pb
from ..gen.coral.agent.v1 import agent_pb2_grpc as pb_grpc
from ..gen.coral.colony.v1 import colony_pb2 as cpb
from ..gen.coral.colony.v1 import colony_pb2_grpc as cpb_grpc
from ..gen.coral.colony.v1 import query_pb2 as qpb
from ..gen.coral.colony.v1 import query_pb2_grpc as qpb_grpc

__all__ = ["pb", "pb_grpc", "qpb", "qpb_grpc", "cpb", "cpb_grpc"]
