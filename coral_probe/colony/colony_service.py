"""ColonyService: what only the colony serves. PushEmits stores the events
agents push (emit_receiver.py); RunScript runs a script on every agent of a
service (fleet_run.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from ..api import cpb_grpc
from .fleet import Fleet
from .store import ColonyStore


class ColonyServicer(cpb_grpc.ColonyServiceServicer):
    def __init__(self, store: ColonyStore, fleet: Fleet, *, log: Callable[[str], None]):
        self.store, self.fleet, self._log = store, fleet, log

    def PushEmits(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        from .emit_receiver import receive

        yield from receive(self.store, request_iterator, context, log=self._log)

    def RunScript(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        from .fleet_run import run

        yield from run(self.fleet, request, context)
