"""One in-process agent: store, system sampler, subscriptions, SDK server,
executor. Used by `coral run`, `coral probe attach --script` and `coral agent`."""

import os
import tempfile
from pathlib import Path

from ..paths import coral_home
from .executor import Executor
from .handlers import Handlers
from .sandbox import Sandbox
from .server import SdkServer
from .subscriptions import Subscriptions
from .system_metrics import SystemSampler


class AgentRuntime:
    def __init__(self, store, *, socket_path: str | None = None, echo: bool = True,
                 heap_mb: int | None = None, max_queued_events: int | None = None):
        self.store = store
        self._socket_dir = None
        if socket_path is None:
            # Short and private: AF_UNIX paths are limited to 108 bytes.
            self._socket_dir = tempfile.mkdtemp(prefix="coral-")
            socket_path = os.path.join(self._socket_dir, "sdk.sock")
        self.socket_path = socket_path
        self.sampler = SystemSampler(store)
        self.subscriptions = Subscriptions(**({"max_queued_events": max_queued_events} if max_queued_events else {}))
        self.server = SdkServer(socket_path, Handlers(store, self.sampler), self.subscriptions)
        deno_dir = coral_home() / "deno"
        sandbox = Sandbox(socket_path, Path(deno_dir), **({"heap_mb": heap_mb} if heap_mb else {}))
        self.executor = Executor(store, self.server, sandbox, echo=echo)

    def __enter__(self) -> "AgentRuntime":
        self.sampler.start()
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.executor.kill_all()
        self.subscriptions.end_all()
        self.server.stop()
        self.sampler.stop()
        if self._socket_dir:
            try:
                os.rmdir(self._socket_dir)
            except OSError:
                pass
