"""ColonyService.PushEmits: an agent's emitted events, stored once each.

The first batch names the agent; each batch is stored in one transaction
(events the colony already has are skipped: the agent resends what it did
not see acknowledged) and only then acknowledged, through the highest seq
the stream has stored. A batch that cannot be stored ends the stream with an
error: the agent keeps its events and sends them again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from ..api import cpb
from ..api.status import abort
from ..errors import CoralError
from .fleet import AGENT_ID
from .store import ColonyStore

MAX_BATCH_EVENTS = 10_000
# A message is at most gRPC's default 4 MiB anyway; this names the bound.
MAX_BATCH_BYTES = 4 << 20


def receive(store: ColonyStore, request_iterator: Iterator[Any], context: grpc.ServicerContext, *,
            log: Callable[[str], None]) -> Iterator[cpb.EmitAck]:
    agent_id = ""
    through = 0
    for batch in request_iterator:
        try:
            agent_id = _agent_of(batch, agent_id)
            _check_size(batch)
        except CoralError as e:
            abort(context, e)
        try:
            stored = store.store_emits(agent_id, batch.events)
        except CoralError as e:
            log(f"emits of agent {agent_id} not stored ({e}); the agent sends them again")
            abort(context, e)
        if batch.events:
            through = max(through, max(event.seq for event in batch.events))
        yield cpb.EmitAck(through_seq=through, stored=stored)


def _agent_of(batch: Any, agent_id: str) -> str:
    """The stream's agent ("" until its first batch names it)."""
    if not agent_id:
        if not batch.agent_id:
            raise CoralError("the first EmitBatch of a stream must name its agent_id")
        if not AGENT_ID.fullmatch(batch.agent_id):
            raise CoralError(f"agent_id {batch.agent_id!r}: letters, digits, '_', '.', '-' (at most 64)")
        return batch.agent_id
    if batch.agent_id and batch.agent_id != agent_id:
        raise CoralError(f"agent_id {batch.agent_id!r} in a stream of agent {agent_id!r}")
    return agent_id


def _check_size(batch: Any) -> None:
    if len(batch.events) > MAX_BATCH_EVENTS:
        raise CoralError(f"an EmitBatch of {len(batch.events)} events: at most {MAX_BATCH_EVENTS}")
    if batch.ByteSize() > MAX_BATCH_BYTES:
        raise CoralError(f"an EmitBatch of {batch.ByteSize()} bytes: at most {MAX_BATCH_BYTES}")
