"""The colony (`coral colony start`): one QueryService over many agents, each
asked in parallel and merged (fleet.py, query_service.py), and the store of
the fleet's emitted events (store.py, emit_receiver.py)."""
