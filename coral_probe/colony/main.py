"""`coral colony start`: the colony in the foreground.

It dials its agents (--agent ID=ADDR, --agents-file), says in one line each
which it cannot reach (and serves the others), owns $CORAL_HOME/colony.duckdb
and serves QueryService (fanned out to the agents, merged) and ColonyService
(the agents' emitted events, fleet runs) on $CORAL_HOME/colony.sock (0600)
and, only with TLS or a token, on --listen HOST:PORT. SIGTERM/SIGINT stop it
cleanly: no new RPCs, the store closed; exit 0."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import __version__
from ..agent.socket_path import claim
from ..api import qpb, qpb_grpc, transport
from ..paths import colony_socket, coral_home
from ..stopping import StopSignals
from ..terminal import safe_text
from .fleet import AgentAddress, Credentials, Fleet

SERVER_GRACE_S = 2.0


def log(line: str) -> None:
    print(f"coral colony: {safe_text(line)}", file=sys.stderr, flush=True)


def start(*, agents: list[AgentAddress], credentials: Credentials, deadline_s: float, listen: str | None = None,
          tls_cert: str | None = None, tls_key: str | None = None, client_ca: str | None = None,
          token_file: str | None = None, db_path: Path | None = None) -> int:
    home = coral_home()
    socket_path = colony_socket(home)
    transport.check_options(socket_path=socket_path, listen=listen, tls_cert=tls_cert, tls_key=tls_key,
                            client_ca=client_ca, token_file=token_file)
    transport.make_parent(socket_path)
    claim(str(socket_path), what="colony socket")  # a second colony on this home: one line
    from .colony_service import ColonyServicer
    from .query_service import ColonyQueryServicer
    from .store import ColonyStore

    with StopSignals() as signals:
        store = ColonyStore(db_path or home / "colony.duckdb")
        fleet = Fleet(agents, credentials, deadline_s=deadline_s, home=home)
        server = None
        try:
            greet(fleet)
            server = transport.serve(ColonyQueryServicer(fleet, store), ColonyServicer(store, fleet, log=log),
                                     socket_path=socket_path, listen=listen, tls_cert=tls_cert, tls_key=tls_key,
                                     client_ca=client_ca, token_file=token_file)
            log(f"serving on unix:{socket_path}" + (
                f" and {listen} (port {getattr(server, 'coral_tcp_port', '?')}, {'TLS' if tls_cert else 'token'})"
                if listen else "") + f" for {len(agents)} agents (coral {__version__})")
            # In slices: a signal the kernel hands to another thread (as it does
            # right after a SIGCONT) runs its handler only when the main thread
            # is back in Python, which an untimed wait never is.
            while not signals.requested.wait(0.5):
                pass
            log(f"stopping ({signals.reason})")
            server.stop(SERVER_GRACE_S).wait()
            server = None
        finally:
            if server is not None:
                server.stop(None)
            fleet.close()
            store.close()
            try:
                if socket_path.is_socket():
                    socket_path.unlink()
            except OSError:
                pass
    log("stopped")
    return 0


def greet(fleet: Fleet) -> None:
    """Asks every agent who it is; one line for each that does not answer.
    The colony serves the others, and asks the missing ones again at every query."""
    answers = fleet.ask(lambda ch, timeout: qpb_grpc.QueryServiceStub(ch).ListAgents(
        qpb.ListAgentsRequest(), timeout=timeout))
    for agent_id, reply in answers.replies.items():
        me = reply.agents[0] if reply.agents else None
        if me is not None:
            fleet.note_identity(agent_id, me.version, me.hostname)
            if me.id and me.id != agent_id:
                log(f"warning: agent {agent_id} calls itself {me.id}")
        log(f"agent {agent_id} at {fleet.agents[agent_id].address.address}: coral {me.version if me else '?'}")
    for agent_id, e in answers.refused.items():
        log(f"warning: agent {agent_id} at {fleet.agents[agent_id].address.address} refused: "
            f"{e.details() if hasattr(e, 'details') else e}")
    for missing in answers.missing:
        log(f"warning: agent {missing.agent_id} at {fleet.agents[missing.agent_id].address.address} "
            f"is unreachable ({missing.reason}); serving the others")
