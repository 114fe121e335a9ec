"""The agent's gRPC API (coral.agent.v1.AgentService): transport.py serves it
(Unix socket, optional TCP with TLS or a bearer token), client.py connects to it."""

from ..gen.coral.agent.v1 import agent_pb2 as pb
from ..gen.coral.agent.v1 import agent_pb2_grpc as pb_grpc

__all__ = ["pb", "pb_grpc"]
