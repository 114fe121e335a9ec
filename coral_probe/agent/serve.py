"""`coral agent`: the SDK socket alone, for scripts started elsewhere."""

import os
import signal
import stat
import threading
import uuid
from pathlib import Path

from ..errors import CoralError
from ..paths import default_db_path
from ..store import Store
from ..targets import check_pid, resolve_binary
from .handlers import ExecutionContext
from .policy import ProbePolicy
from .runtime import AgentRuntime
from .socket_path import claim as claim_socket_path
from .subscriptions import AgentTarget


def read_token(path: str) -> str:
    """The token from a file or an inherited descriptor (/dev/fd/N): never
    on the command line, where `ps` shows it to every user."""
    try:
        with open(path) as f:
            mode = os.fstat(f.fileno()).st_mode
            token = f.read(4096).strip()
    except OSError as e:
        raise CoralError(f"--token-file {path}: {e.strerror}") from None
    if stat.S_ISREG(mode) and mode & 0o077:
        raise CoralError(f"--token-file {path}: readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    if not token:
        raise CoralError(f"--token-file {path}: empty")
    return token


def serve(socket_path: str, token_file: str, pid: int | None, binary: str | None, db_path: Path | None,
          max_queued_events: int | None = None, policy: ProbePolicy = ProbePolicy()) -> None:
    token = read_token(token_file)
    claim_socket_path(socket_path)  # refused before the store and threads start, not after
    if pid is not None:
        check_pid(pid)
    if binary is not None:
        binary = resolve_binary(binary, pid).path
    store = Store(db_path or default_db_path())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with AgentRuntime(store, socket_path=socket_path, max_queued_events=max_queued_events,
                          policy=policy) as agent:
            script_id = store.register_script("external", "")
            execution_id = uuid.uuid4().hex[:16]  # not the token: that stays out of the database
            store.begin_execution(execution_id, script_id, {})
            agent.server.register(token, ExecutionContext(execution_id, script_id, AgentTarget(binary, pid)))
            print(f"coral agent: serving {socket_path}", flush=True)
            stop.wait()
            store.end_execution(execution_id, "completed", 0)
    finally:
        store.close()
