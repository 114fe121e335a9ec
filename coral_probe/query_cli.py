"""`coral query …`: seed 001's read API (QueryService) on the command line:
services, metrics, traces, SQL and agents.

Whom it asks: `--agent ADDR` (one agent), `--colony ADDR` (the colony: every
agent's answer merged), else the agent serving $CORAL_HOME, else the colony
serving it, else the local DuckDB file, read through the same query functions
the agent serves them with.

What it prints: tables for people; with --json, JSON lines (one object per
service, trace, agent or row; a metric is one object), durations in ns. A
partial answer (agents of a colony that did not answer) names each missing
agent on stderr, one line each, and still exits 0: the answer is partial, not
failed. A refusal (an unknown service, a write statement) is one line, exit 1.

Declared here, registered by cli.py; grpc and the generated messages are
imported only when a command runs."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from .agent_client import CALL_TIMEOUT_S, AgentConnection, connection_options, iso
from .durations import format_ns, parse_duration_ns
from .errors import CoralError, first_line

DEFAULT_WINDOW = "1h"  # the agents' own default (time_range_ms 0)
_JSON_HELP = "JSON lines: one object per record (see `coral query --help`)."


@click.group("query")
def query() -> None:
    """Ask an agent, the colony or the local DuckDB (read-only).

    \b
    Whom: --agent ADDR, --colony ADDR (unix:PATH or HOST:PORT, with the
    TLS/token options), else the agent serving $CORAL_HOME, else the colony
    serving it ($CORAL_HOME/colony.sock), else $CORAL_HOME/agent.duckdb.
    --json prints JSON lines: one object per service, trace, agent or row,
    one object for a metric; durations in ns, times as RFC 3339 text or ns.
    Agents of a colony that did not answer are named on stderr; the answer
    of the others is printed and the exit status is 0.
    """


def target_options(f: Any) -> Any:
    """--agent, --colony and the TLS/token options for either."""
    f = click.option("--colony", metavar="unix:PATH|HOST:PORT",
                     help="Colony to ask: the merged answer of its agents.")(f)
    return connection_options(f)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)(f)


def window_option(f: Any) -> Any:
    return click.option("--window", default=DEFAULT_WINDOW, show_default=True, metavar="DURATION",
                        help="How far back to look, e.g. 5m, 1h.")(f)


# -- whom to ask ----------------------------------------------------------------

class Remote:
    """An agent or a colony: QueryService calls, each failure one line."""

    def __init__(self, connection: AgentConnection):
        from .api import qpb_grpc

        self.connection = connection
        self.stub = qpb_grpc.QueryServiceStub(connection.channel)

    def call(self, method: str, request: Any) -> Any:
        return self.connection.rpc(lambda: getattr(self.stub, method)(request, timeout=CALL_TIMEOUT_S))


class LocalFile:
    """No agent and no colony: the DuckDB file, read-only, answered by the
    agent's own QueryService code (the same query functions, the same replies)."""

    def __init__(self, db_path: Path | None):
        from .paths import default_db_path

        self.path = db_path or default_db_path()

    def call(self, method: str, request: Any) -> Any:
        import socket

        import duckdb

        from .api.query_service import QueryServicer
        from .services import ServiceMap
        from .store import open_readonly

        if method == "ListAgents":
            raise CoralError("no agent or colony serves $CORAL_HOME: start one (`coral agent start`, "
                             "`coral colony start`) or give --agent/--colony ADDR")
        if not self.path.exists():
            raise CoralError(f"no database at {self.path} yet: run `coral probe attach` first")
        con = open_readonly(self.path)
        try:
            # Services as the file recorded them: no agent's --service names here; the id an agent has by default.
            servicer = QueryServicer(_Cursors(con), ServiceMap(), socket.gethostname(), sampler=None)
            return getattr(servicer, method)(request, _Refusals())
        except duckdb.Error as e:  # a file older than its tables' columns (an agent would add them)
            raise CoralError(f"cannot read {self.path}: {first_line(e)}") from None
        finally:
            con.close()


class Refused(CoralError):
    """The query functions refused (an unknown service): as an agent's refusal, exit 1."""

    exit_code = 1


class _Cursors:
    """What the servicer takes of a store: a cursor for the length of a `with`."""

    def __init__(self, con: Any):
        self.con = con

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        cur = self.con.cursor()
        try:
            yield cur
        finally:
            cur.close()


class _Refusals:
    """The servicer's call context when the CLI itself answers: its refusal is the one-line error."""

    def abort(self, code: Any, details: str) -> None:
        raise Refused(details)


@contextlib.contextmanager
def asked(agent: str | None, colony: str | None, tls_ca: str | None, tls_cert: str | None, tls_key: str | None,
          token_file: str | None, db_path: Path | None = None) -> Iterator[Remote | LocalFile]:
    """Whom a command asks (see the group's help), for the length of the `with`."""
    credentials = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key, "token_file": token_file}
    if agent is not None and colony is not None:
        raise click.UsageError("--agent and --colony exclude each other")
    if db_path is not None and (agent is not None or colony is not None):
        raise click.UsageError("--db reads a file here: it excludes --agent and --colony")
    if agent is None and colony is None:
        given = next((f"--{k.replace('_', '-')}" for k, v in credentials.items() if v is not None), None)
        if given:
            raise click.UsageError(f"{given} goes with --agent or --colony")
        if db_path is None:
            agent, colony = _local_server()
    if agent is None and colony is None:
        yield LocalFile(db_path)
        return
    if colony is not None:
        check_address(colony, "--colony")
    with AgentConnection(agent or colony, role="agent" if agent else "colony", **credentials) as connection:
        yield Remote(connection)


def _local_server() -> tuple[str | None, str | None]:
    """(agent, colony): the agent serving $CORAL_HOME, else its colony, else neither."""
    from .paths import accepts, colony_socket, coral_home, live_agent

    home = coral_home()
    if (socket := live_agent(home)) is not None:
        return f"unix:{socket}", None
    if accepts(socket := colony_socket(home)):
        return None, f"unix:{socket}"
    return None, None


def check_address(address: str, option: str) -> None:
    from .api import client

    try:
        client.target(address, home=".")
    except CoralError:
        raise CoralError(f"{option} {address}: expected unix:PATH or HOST:PORT") from None


def window_ms(window: str) -> int:
    ns = parse_duration_ns(window, option="--window")
    if ns < 1_000_000:
        raise CoralError(f"invalid --window '{window}': at least 1ms")
    return math.ceil(ns / 1_000_000)


# -- the verbs ------------------------------------------------------------------

@query.command("services")
@json_option
@target_options
def services(as_json: bool, **target: Any) -> None:
    """The services the agent (or the colony's agents) know, one line per agent.

    \b
    coral query services
    coral query services --colony unix:/root/.coral/colony.sock --json
    """
    from .api import qpb

    with asked(**target) as source:
        reply = source.call("ListServices", qpb.ListServicesRequest())
    with printing(reply.missing):
        if as_json:
            print_json_lines({"service": s.name, "agent_id": s.agent_id, "instances": s.instance_count,
                              "events": s.events, "last_seen": iso(s.last_seen) if s.HasField("last_seen") else None,
                              "binaries": list(s.binaries)} for s in reply.services)
        else:
            print_table(["SERVICE", "AGENT", "INSTANCES", "EVENTS", "LAST EVENT", "BINARIES"],
                        [(s.name, s.agent_id, s.instance_count, s.events, _when(s.last_seen),
                          ", ".join(s.binaries)) for s in reply.services])


@query.command("metrics")
@click.argument("service")
@click.option("--function", "function", metavar="NAME", help="The probed function (--percentile needs one; --error-rate without: every function).")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), metavar="P",
              help="Latency percentile of --function, 0-100 (99, 99.9).")
@click.option("--error-rate", is_flag=True, help="Calls returning non-zero over all calls with a return value.")
@window_option
@json_option
@target_options
def metrics(service: str, function: str | None, percentile: float | None, error_rate: bool, window: str,
            as_json: bool, **target: Any) -> None:
    """A latency percentile or the error rate of SERVICE.

    \b
    coral query metrics payments --function ProcessPayment --percentile 99
    coral query metrics payments --error-rate --window 5m
    coral query metrics payments --function ProcessPayment --percentile 50 --colony unix:colony.sock --json
    """
    from .api import qpb

    if (percentile is None) == (not error_rate):
        raise click.UsageError("give one of --percentile P or --error-rate")
    if percentile is not None and not function:
        raise click.UsageError("--percentile needs --function: the latency is that of a probed function")
    time_range_ms = window_ms(window)
    with asked(**target) as source:
        if percentile is not None:
            reply = source.call("GetPercentile", qpb.GetPercentileRequest(
                service=service, metric=function, percentile=percentile, time_range_ms=time_range_ms))
        else:
            reply = source.call("GetErrorRate", qpb.GetErrorRateRequest(
                service=service, function=function or "", time_range_ms=time_range_ms))
    with printing(reply.missing):
        if percentile is not None:
            value = round(reply.value) if reply.count else None
            if as_json:
                print_json_lines([{"service": service, "function": function, "percentile": percentile,
                                   "value_ns": value, "count": reply.count,
                                   "relative_accuracy": reply.sketch.relative_accuracy}])
            else:
                print_table(["SERVICE", "FUNCTION", f"P{percentile:g}", "CALLS"],
                            [(service, function, format_ns(value), reply.count)])
        elif as_json:
            print_json_lines([{"service": service, "function": function, "error_rate": reply.rate,
                               "errors": reply.error_count, "calls": reply.total_count}])
        else:
            print_table(["SERVICE", "FUNCTION", "ERROR RATE", "ERRORS", "CALLS"],
                        [(service, function or "(all)", f"{reply.rate:.2%}" if reply.total_count else "-",
                          reply.error_count, reply.total_count)])


@query.command("traces")
@click.argument("service")
@click.option("--slow", is_flag=True, help="The slowest calls, slowest first.")
@click.option("--threshold", metavar="DURATION", help="With --slow: only calls at least this long (500ms).")
@click.option("--errors", is_flag=True, help="Calls that returned non-zero, newest first.")
@click.option("--function", "function", metavar="NAME", help="Only this probed function [default: all].")
@window_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=10, show_default=True)
@json_option
@target_options
def traces(service: str, slow: bool, threshold: str | None, errors: bool, function: str | None, window: str,
           limit: int, as_json: bool, **target: Any) -> None:
    """Slow or failed calls of SERVICE.

    \b
    coral query traces payments --slow --threshold 500ms
    coral query traces payments --errors --window 15m --limit 50 --json
    """
    from .api import qpb

    if slow == errors:
        raise click.UsageError("give one of --slow or --errors")
    if threshold is not None and not slow:
        raise click.UsageError("--threshold goes with --slow")
    time_range_ms = window_ms(window)
    with asked(**target) as source:
        if slow:
            min_ns = parse_duration_ns(threshold, option="--threshold") if threshold is not None else 0
            reply = source.call("FindSlowTraces", qpb.FindSlowTracesRequest(
                service=service, function=function or "", min_duration_ns=min_ns, time_range_ms=time_range_ms,
                limit=limit))
        else:
            reply = source.call("FindErrorTraces", qpb.FindErrorTracesRequest(
                service=service, function=function or "", time_range_ms=time_range_ms, limit=limit))
    with printing(reply.missing):
        if as_json:
            print_json_lines({"trace_id": t.trace_id, "agent_id": t.agent_id, "service": t.service,
                              "function": t.function, "pid": t.pid, "tid": t.tid, "timestamp_ns": t.timestamp_ns,
                              "duration_ns": t.duration_ns, "return_value": t.return_value, "args": list(t.args)}
                             for t in reply.traces)
        else:
            print_table(["TIME (UTC)", "AGENT", "FUNCTION", "PID", "TID", "DURATION", "RETURN", "ARGS"],
                        [(_time_ns(t.timestamp_ns), t.agent_id, t.function, t.pid, t.tid, format_ns(t.duration_ns),
                          t.return_value, " ".join(map(str, t.args))) for t in reply.traces])
        if reply.total_count > len(reply.traces):
            # On stderr: stdout stays the records alone.
            print(f"coral: {len(reply.traces)} of {reply.total_count} matching calls shown (--limit)",
                  file=sys.stderr)


@query.command("agents")
@json_option
@target_options
def agents(as_json: bool, **target: Any) -> None:
    """The colony's agents (reachable, last seen, version), or an agent itself.

    \b
    coral query agents --colony unix:/root/.coral/colony.sock
    """
    from .api import qpb

    with asked(**target) as source:
        reply = source.call("ListAgents", qpb.ListAgentsRequest())
    with printing(()):
        if as_json:
            print_json_lines({"id": a.id, "address": a.address or None, "reachable": a.reachable,
                              "last_seen": iso(a.last_seen) if a.HasField("last_seen") else None,
                              "version": a.version, "hostname": a.hostname, "error": a.error or None}
                             for a in reply.agents)
        else:
            print_table(["AGENT", "ADDRESS", "REACHABLE", "LAST SEEN", "VERSION", "HOSTNAME", "ERROR"],
                        [(a.id, a.address or "-", "yes" if a.reachable else "no", _when(a.last_seen),
                          a.version or "-", a.hostname or "-", a.error) for a in reply.agents])


@query.command("sql")
@click.argument("sql")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="DuckDB file [default: $CORAL_HOME/agent.duckdb].")
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one object per row.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@target_options
def query_sql(sql: str, db_path: Path | None, limit: int, as_json: bool, as_csv: bool, **target: Any) -> None:
    """Run one read-only SQL query and print the rows.

    Through a colony, each agent runs it and its rows come behind an
    `agent_id` column; a query of the colony's own tables (emitted_events
    of the fleet) runs on the colony.

    \b
    coral query sql "SELECT function_name, count(*) FROM probe_events GROUP BY 1"
    coral query sql --json "SELECT * FROM probe_sessions" | jq .hits
    coral query sql --csv "SELECT timestamp, duration_ns FROM probe_events" > calls.csv
    coral query sql --colony unix:colony.sock "SELECT name, count(*) FROM emitted_events GROUP BY 1"
    """
    from .queries import print_query, print_rows

    if as_json and as_csv:
        raise click.UsageError("--json and --csv are mutually exclusive")
    fmt = "json" if as_json else "csv" if as_csv else "table"
    with asked(**target, db_path=db_path) as source:
        if isinstance(source, LocalFile):
            with printing(()):
                print_query(sql, db_path, limit, fmt)
            return
        from .api import qpb, query_client

        reply = source.call("ExecuteQuery", qpb.ExecuteQueryRequest(sql=sql, max_rows=limit))
    with printing(reply.missing):
        print_rows(query_client.rows_of(reply), limit, fmt)


# -- printing -------------------------------------------------------------------

@contextlib.contextmanager
def printing(missing: Any) -> Iterator[None]:
    """Prints the records, then one stderr line per agent that did not answer.
    A reader that had enough (`| head`) is no error."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would fail again flushing stdout at exit: it goes to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    from .terminal import safe_text

    for agent in missing:
        print(safe_text(f"coral: no answer from {agent.agent_id} ({agent.reason})"), file=sys.stderr)


def print_table(columns: list[str], rows: list[tuple]) -> None:
    """As `coral query sql` prints its tables (values escaped for the terminal)."""
    from .queries import ReadRows, print_rows

    print_rows(ReadRows(columns, [], [tuple(str(v) for v in row) for row in rows], False), len(rows), "table")


def print_json_lines(objects: Any) -> None:
    out = sys.stdout
    for obj in objects:
        # ASCII escapes: safe on a terminal, exact for a parser; compact, as `query sql --json` writes its rows.
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")


def _when(ts: Any) -> str:
    """A Timestamp for people: UTC to the second; unset, "-"."""
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _time_ns(ns: int) -> str:
    whole = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return f"{whole:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000:09d}"
