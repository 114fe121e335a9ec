"""`coral agent`: the SDK socket alone, for scripts started elsewhere."""

import signal
import threading
from pathlib import Path

from ..paths import default_db_path
from ..store import Store
from ..targets import check_pid, resolve_binary
from .handlers import ExecutionContext
from .runtime import AgentRuntime
from .subscriptions import AgentTarget


def serve(socket_path: str, token: str, pid: int | None, binary: str | None, db_path: Path | None,
          max_queued_events: int | None = None) -> None:
    if pid is not None:
        check_pid(pid)
    if binary is not None:
        binary = resolve_binary(binary, pid).path
    store = Store(db_path or default_db_path())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with AgentRuntime(store, socket_path=socket_path, max_queued_events=max_queued_events) as agent:
            script_id = store.register_script("external", "")
            store.begin_execution(token, script_id, {})
            agent.server.register(token, ExecutionContext(token, script_id, AgentTarget(binary, pid)))
            print(f"coral agent: serving {socket_path}", flush=True)
            stop.wait()
            store.end_execution(token, "completed", 0)
    finally:
        store.close()
