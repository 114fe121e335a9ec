"""One in-process agent: store, system sampler, subscriptions, SDK server,
executor. Used by `coral run`, `coral probe attach --script` and `coral agent`."""

import shutil
import tempfile
from pathlib import Path
from typing import TextIO

from .executor import Executor
from .handlers import EMITS_PER_S, Handlers
from .log_pump import LINES_PER_S
from .policy import ProbePolicy
from .sandbox import Sandbox
from .server import SdkServer
from .subscriptions import Subscriptions
from .system_metrics import SystemSampler


class AgentRuntime:
    def __init__(self, store, *, socket_path: str | None = None, echo: bool = True,
                 heap_mb: int | None = None, max_queued_events: int | None = None,
                 policy: ProbePolicy = ProbePolicy(), script_stdout: TextIO | None = None,
                 log_lines_per_s: float = LINES_PER_S, emits_per_s: float = EMITS_PER_S):
        self.store = store
        # Short (AF_UNIX paths are limited to 108 bytes) and the agent's own:
        # the socket, Deno's cache and the copies of the scripts that run.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="coral-"))
        self._own_socket = socket_path is None
        if socket_path is None:
            socket_path = str(self.runtime_dir / "sdk.sock")
        self.socket_path = socket_path
        self.sampler = SystemSampler(store)
        self.subscriptions = Subscriptions(store, **({"max_queued_events": max_queued_events}
                                                     if max_queued_events else {}), policy=policy)
        self.server = SdkServer(socket_path, Handlers(store, self.sampler, policy), self.subscriptions)
        self.sandbox = Sandbox(socket_path, self.runtime_dir, **({"heap_mb": heap_mb} if heap_mb else {}))
        self.sandbox.prepare_runtime()
        self.executor = Executor(store, self.server, self.sandbox, self.subscriptions.end_streams_of, echo=echo,
                                 script_stdout=script_stdout, log_lines_per_s=log_lines_per_s,
                                 emits_per_s=emits_per_s)

    def __enter__(self) -> "AgentRuntime":
        self.sampler.start()
        self.server.start()
        if self._own_socket:
            self.sandbox.share_socket()
        return self

    def __exit__(self, *exc) -> None:
        self.executor.stop_all("agent shutdown")
        self.subscriptions.end_all("agent shutdown")
        self.server.stop()
        self.sampler.stop()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
