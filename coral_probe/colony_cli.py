"""`coral colony …`: the colony that federates agents (coral_probe/colony/).
Declared here so that other commands never import gRPC."""

from __future__ import annotations

from pathlib import Path

import click

from .durations import parse_duration_ns


@click.group()
def colony() -> None:
    """The colony: one query API over many agents, and the store of their emits."""


@colony.command("start")
@click.option("--agent", "agent_specs", multiple=True, metavar="ID=unix:PATH|HOST:PORT",
              help="An agent to federate (repeatable).")
@click.option("--agents-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="A file of agents: one ID=ADDR a line, # comments.")
@click.option("--deadline", default="2s", show_default=True, metavar="DURATION",
              help="How long each agent has to answer a query; past it the reply is partial and names it.")
@click.option("--listen", metavar="HOST:PORT", help="Also serve on TCP (needs --tls-cert/--tls-key or --token-file).")
@click.option("--tls-cert", metavar="PATH", help="Server certificate (PEM) for --listen.")
@click.option("--tls-key", metavar="PATH", help="Its private key (PEM).")
@click.option("--client-ca", metavar="PATH", help="Mutual TLS: clients need a certificate signed by this CA.")
@click.option("--token-file", metavar="PATH", help="Bearer token every TCP call must carry (one line).")
@click.option("--agent-tls-ca", metavar="PATH", help="CA that signed the agents' certificates (TCP agents).")
@click.option("--agent-tls-cert", metavar="PATH", help="Client certificate for agents with mutual TLS.")
@click.option("--agent-tls-key", metavar="PATH", help="Its private key.")
@click.option("--agent-token-file", metavar="PATH", help="Bearer token for the agents' TCP ports.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="DuckDB file [default: $CORAL_HOME/colony.duckdb].")
@click.pass_context
def colony_start(ctx: click.Context, agent_specs, agents_file, deadline, listen, tls_cert, tls_key, client_ca,
                 token_file, agent_tls_ca, agent_tls_cert, agent_tls_key, agent_token_file, db_path) -> None:
    """Run the colony in the foreground (SIGTERM stops it cleanly).

    \b
    coral colony start --agent web1=10.0.0.5:7443 --agent web2=10.0.0.6:7443 --agent-tls-ca ca.pem
    coral colony start --agent local=unix:/root/.coral/agent.sock
    """
    from .colony.fleet import Credentials, parse_agents
    from .colony.main import start

    deadline_s = parse_duration_ns(deadline, option="--deadline") / 1e9
    if deadline_s <= 0:
        raise click.BadParameter("must be above 0", param_hint="--deadline")
    credentials = Credentials(tls_ca=agent_tls_ca, tls_cert=agent_tls_cert, tls_key=agent_tls_key,
                              token_file=agent_token_file)
    ctx.exit(start(agents=parse_agents(agent_specs, agents_file), credentials=credentials, deadline_s=deadline_s,
                   listen=listen, tls_cert=tls_cert, tls_key=tls_key, client_ca=client_ca, token_file=token_file,
                   db_path=db_path))
