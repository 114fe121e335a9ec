"""`coral agent start`: the resident agent in the foreground.

It owns $CORAL_HOME/agent.duckdb, runs an AgentRuntime (SDK socket, sandbox,
executor) and a ScriptRegistry, and serves AgentService on
$CORAL_HOME/agent.sock (and, with TLS or a token, on --listen HOST:PORT).
One line per event on stderr (systemd's journal takes them as they are).
SIGTERM/SIGINT stop it cleanly: no new RPCs, the registry closed, every script
stopped (its probes detached), the server stopped, DuckDB closed; exit 0."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from ..agent.emit_pusher import ColonyOptions, EmitPusher
from ..agent.handlers import EMITS_PER_S
from ..agent.log_pump import LINES_PER_S
from ..agent.policy import ProbePolicy
from ..agent.registry import ScriptRegistry
from ..agent.runtime import AgentRuntime
from ..agent.socket_path import claim
from ..paths import agent_socket, coral_home
from ..services import ServiceMap
from ..stopping import StopSignals
from ..terminal import safe_text
from . import transport
from .agent_service import AgentServicer
from .query_service import QueryServicer

SERVER_GRACE_S = 2.0


def log(line: str) -> None:
    # Lines carry clients' strings (names, created_by, refs): one line each, always.
    print(f"coral agent: {safe_text(line)}", file=sys.stderr, flush=True)


def start(*, listen: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
          client_ca: str | None = None, token_file: str | None = None, db_path: Path | None = None,
          policy: ProbePolicy = ProbePolicy(), log_lines_per_s: float = LINES_PER_S,
          services: ServiceMap = ServiceMap(), agent_id: str | None = None, emits_per_s: float = EMITS_PER_S,
          colony: ColonyOptions | None = None) -> int:
    agent_id = agent_id or socket.gethostname()
    home = coral_home()
    socket_path = agent_socket(home)
    # Everything refusable is refused before the store opens and threads start.
    transport.check_options(socket_path=socket_path, listen=listen, tls_cert=tls_cert, tls_key=tls_key,
                            client_ca=client_ca, token_file=token_file)
    colony_channel = colony.channel(home) if colony is not None else None
    transport.make_parent(socket_path)
    claim(os.fspath(socket_path), what="agent socket")  # a second agent on this home: one line
    from ..store import Store
    from .probe_service import ProbeServicer

    with StopSignals() as signals:
        store = Store(db_path or home / "agent.duckdb")
        server = None
        try:
            with AgentRuntime(store, echo=False, policy=policy, log_lines_per_s=log_lines_per_s,
                              emits_per_s=emits_per_s) as runtime:
                registry = ScriptRegistry(store, runtime.executor, home=home)
                runtime.executor.on_end.append(_log_end)
                # Sessions and scripts' probes are named from the --service names, and SDK queries know them.
                runtime.subscriptions.services = runtime.server.handlers.services = services
                probes = ProbeServicer(store, log=log, services=services)
                pusher = None
                try:
                    registry.recover()  # what a previous agent on this home left running
                    server = transport.serve(AgentServicer(registry, log=log, policy=policy, agent_id=agent_id),
                                             probes, QueryServicer(store, services, agent_id, runtime.sampler),
                                             socket_path=socket_path, listen=listen, tls_cert=tls_cert, tls_key=tls_key,
                                             client_ca=client_ca, token_file=token_file)
                    log(f"agent {agent_id}" + "".join(f", service {name}={binary}"
                                                      for name, binary in sorted(services.binaries.items())))
                    log(f"serving on unix:{socket_path}" + (
                        f" and {listen} (port {getattr(server, 'coral_tcp_port', '?')}, "
                        f"{'TLS' if tls_cert else 'token'})" if listen else ""))
                    if colony is not None:
                        pusher = EmitPusher(store, colony.address, colony_channel, agent_id, log=log)
                        pusher.start()
                    # In slices: a signal the kernel hands to another thread (as it does
                    # right after a SIGCONT) runs its handler only when the main thread
                    # is back in Python, which an untimed wait never is.
                    while not signals.requested.wait(0.5):
                        pass
                    log(f"stopping ({signals.reason})")
                    # No new RPCs; followers of logs are cancelled after the grace.
                    server.stop(SERVER_GRACE_S).wait()
                    server = None
                finally:
                    if pusher is not None:
                        pusher.stop()  # what the colony did not acknowledge goes at the next start
                    registry.close()
                    if server is not None:
                        server.stop(None)
                    probes.close()  # the `coral probe attach` sessions the stop cut
                # AgentRuntime's exit: every script stopped (streams end, probes
                # detached, grace, kill), subscriptions ended, SDK socket closed.
        finally:
            store.close()
            try:
                if socket_path.is_socket():
                    socket_path.unlink()
            except OSError:
                pass
    log("stopped")
    return 0


def _log_end(run) -> None:
    code = f", exit code {run.exit_code}" if run.exit_code is not None else ""
    reason = f": {run.reason}" if run.reason else ""
    log(f"execution {run.execution_id} ended {run.status}{code}{reason}")
