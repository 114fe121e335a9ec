"""`coral script …`: deploy, list, status, logs, stop and delete scripts on a
resident agent through its gRPC AgentService (coral_probe/api).

Declared here, registered by cli.py; grpc, the generated messages and rich
are imported only when a command runs, so other commands do not pay for them.
Errors: bad input is one line and exit 2 (before any RPC); the agent's
refusals and an unreachable agent are one line and exit 1."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from .agent_client import (CALL_TIMEOUT_S, DEPLOY_TIMEOUT_S, STATUS_FILTERS, AgentConnection,
                           connection_options, every_seconds, execution_dict, local_user, script_dict,
                           script_trigger, status_filter, status_name, trigger_text, wire_seconds)
from .errors import CoralError

# The agent's own limit (agent/registry.py, which cannot be imported without
# DuckDB): checked here too so a big file is neither read whole nor sent.
MAX_CODE_BYTES = 1 << 20


@click.group("script")
def script() -> None:
    """Deploy and manage scripts on a resident agent (`coral agent start`)."""


@script.command("deploy", context_settings={"max_content_width": 100})
@click.option("--name", required=True, help="Script name; deploying it again makes a new version.")
@click.option("--file", "file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="TypeScript source (at most 1 MiB).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Passed to the script (coral.params()).")
@click.option("--cron", metavar="EXPR",
              help="Run on a schedule, in UTC: five-field cron ('*/5 * * * *'), or six fields with "
                   "seconds first ('*/10 * * * * *': every 10 s).")
@click.option("--when", "when", metavar="SQL",
              help="Run when this read-only SELECT over the agent's tables first returns a row; "
                   "again only after it has returned none.")
@click.option("--every", metavar="DURATION",
              help="How often --when is checked, e.g. 30s, 2m [default: the agent's, 30s].")
@click.option("--daemon", is_flag=True, help="Long-running: timeout up to 24 h.")
@click.option("--timeout", type=click.IntRange(min=1), metavar="SECONDS",
              help="Seconds before a run is killed [default: 60, --daemon: 86400].")
@click.option("--created-by", metavar="NAME", help="Recorded as the deployer [default: your user name].")
@click.option("--json", "as_json", is_flag=True, help="The reply as one JSON object.")
@connection_options
def deploy(name, file, params, cron, when, every, daemon, timeout, created_by, as_json, **conn) -> None:
    """Deploy a script (validated by the agent before it is accepted).

    Without --cron or --when it runs once now. With one, it is PENDING
    between runs and RUNNING during one; a fire while its run is still
    going starts no second copy.

    \b
    coral script deploy --name slow-payments --file slow.ts --param threshold_ms=500
    coral script deploy --name nightly --file report.ts --cron '0 3 * * *'
    coral script deploy --name on-errors --file dig.ts --when "SELECT 1 FROM emitted_events
      WHERE name = 'error' AND timestamp > now() - INTERVAL 1 MINUTE" --every 30s
    coral script deploy --name watcher --file watch.ts --daemon
    """
    from .agent.run import parse_params
    from .api import pb

    if cron is not None and when is not None:
        raise click.UsageError("--cron and --when exclude each other")
    if every is not None and when is None:
        raise click.UsageError("--every goes with --when")
    kind = "schedule" if cron is not None else "event" if when is not None else "manual"
    trigger = script_trigger(kind, cron=cron, condition=when,
                             check_interval_s=every_seconds(every) if every is not None else 0)
    code = _read_code(file)
    request = pb.DeployScriptRequest(script=pb.Script(
        name=name, code=code, params=parse_params(params), trigger=trigger,
        mode=pb.SCRIPT_MODE_DAEMON if daemon else pb.SCRIPT_MODE_AD_HOC,
        timeout_seconds=wire_seconds(timeout or 0),
        created_by=created_by if created_by is not None else local_user()))
    with AgentConnection(**conn) as agent:
        reply = agent.call("DeployScript", request, timeout=DEPLOY_TIMEOUT_S)
    if as_json:
        _print_json({"script_id": reply.script_id, "name": name, "version": reply.version,
                     "status": status_name(reply.status), "deployed_to": list(reply.deployed_to),
                     "replaced_script_id": reply.replaced_script_id or None})
        return
    lines = [f"Script deployed: {name}", f"  ID: {reply.script_id}", f"  Version: {reply.version}"]
    if reply.replaced_script_id:
        lines.append(f"  Replaces: {reply.replaced_script_id}")
    if reply.deployed_to:
        lines.append(f"  Deployed to: {', '.join(reply.deployed_to)}")
    lines.append(f"  Status: {status_name(reply.status).upper()}")
    _echo_lines(lines)


@script.command("list")
@click.option("--status", "status", type=click.Choice(STATUS_FILTERS), default="all", show_default=True)
@click.option("--all-versions", is_flag=True, help="Every version, not only the newest per name.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one object per script.")
@connection_options
def list_scripts(status, all_versions, as_json, **conn) -> None:
    """List deployed scripts.

    \b
    coral script list
    coral script list --status running --json | jq -r .name
    """
    from .api import pb

    with AgentConnection(**conn) as agent:
        reply = agent.call("ListScripts", pb.ListScriptsRequest(status=status_filter(status),
                                                                all_versions=all_versions))
    if as_json:
        for s in reply.scripts:
            _print_json(script_dict(s))
        return
    if not reply.scripts:
        click.echo("no scripts" if status == "all" else f"no {status} scripts", err=True)
        return
    now = datetime.now(timezone.utc)
    rows = [[s.id, s.name, str(s.version), status_name(s.status).upper(), trigger_text(s.trigger),
             _ago(s.created_at, now) if s.HasField("created_at") else "-", s.created_by or "-"]
            for s in reply.scripts]
    _print_table(["ID", "NAME", "VERSION", "STATUS", "TRIGGER", "CREATED", "BY"], rows)


@script.command("status")
@click.argument("ref", metavar="ID|NAME")
@click.option("--tail", type=click.IntRange(1, 1000), help="Recent executions to show [default: the agent's].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@connection_options
def status(ref, tail, as_json, **conn) -> None:
    """A script's status and its recent executions (exit codes, times).

    \b
    coral script status slow-payments
    coral script status 550e8400-e29b-41d4-a716-446655440000 --tail 20
    """
    from .api import pb

    with AgentConnection(**conn) as agent:
        reply = agent.call("GetScriptStatus", pb.GetScriptStatusRequest(script_id=ref, ref=ref, tail=tail or 0))
    if as_json:
        out = {"script_id": reply.script_id, "status": status_name(reply.status),
               "script": script_dict(reply.script) if reply.HasField("script") else None,
               "executions": [execution_dict(e) for e in reply.executions]}
        _print_json(out)
        return
    s = reply.script
    title = f"Script: {s.name or ref}" + (f" (v{s.version})" if s.version else "")
    lines = [title, f"  ID: {reply.script_id or s.id}", f"  Status: {status_name(reply.status).upper()}"]
    if reply.HasField("script"):
        mode = "daemon" if s.mode == pb.SCRIPT_MODE_DAEMON else "ad-hoc"
        timeout = f", timeout {s.timeout_seconds}s" if s.timeout_seconds else ""
        lines.append(f"  Mode: {mode}{timeout}")
        lines.append(f"  Trigger: {trigger_text(s.trigger)}")
        if s.params:
            lines.append("  Params: " + " ".join(f"{k}={v}" for k, v in sorted(s.params.items())))
        if s.HasField("created_at"):
            by = f" by {s.created_by}" if s.created_by else ""
            lines.append(f"  Created: {_time(s.created_at)}{by}")
    _echo_lines(lines)
    if not reply.executions:
        click.echo("\nNo executions yet.")
        return
    click.echo("\nRecent executions:")
    rows = [[e.execution_id, status_name(e.status).upper(),
             _time(e.started_at) if e.HasField("started_at") else "-",
             _time(e.completed_at) if e.HasField("completed_at") else "-",
             _elapsed(e), str(e.exit_code) if e.has_exit_code else "-", e.end_reason or "-"]
            for e in reply.executions]
    _print_table(["EXECUTION", "STATUS", "STARTED", "ENDED", "DURATION", "EXIT", "REASON"], rows)
    latest = reply.executions[0]
    output = [("", line) for line in latest.stdout.splitlines()] + \
             [("stderr: ", line) for line in latest.stderr.splitlines()]
    if output:
        # `coral script logs` reads the latest execution too, its last lines by default.
        more = f"coral script logs {shlex.quote(ref)} --tail N"
        click.echo(f"\nLatest output ({latest.execution_id}, its last lines; `{more}` for more):")
        _echo_lines([f"  {prefix}{line}" for prefix, line in output[-10:]])


@script.command("logs")
@click.argument("ref", metavar="ID|NAME")
@click.option("--tail", type=click.IntRange(1, 1_000_000), help="Last N lines first [default: the agent's].")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends (Ctrl-C to leave).")
@click.option("--execution", "execution_id", metavar="ID", help="One execution [default: the latest].")
@connection_options
def logs(ref, tail, follow, execution_id, **conn) -> None:
    """Print a script's output: stdout lines on stdout, stderr lines on stderr.

    \b
    coral script logs slow-payments --tail 50
    coral script logs slow-payments --follow
    """
    from .api import pb

    request = pb.StreamScriptLogsRequest(script_id=ref, ref=ref, follow=follow, tail=tail or 0,
                                         execution_id=execution_id or "")
    with AgentConnection(**conn) as agent:
        try:
            for batch in agent.stream("StreamScriptLogs", request, timeout=None if follow else CALL_TIMEOUT_S):
                _echo_log_batch(batch.entries)
            sys.stdout.flush()
        except BrokenPipeError:
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _echo_log_batch(entries) -> None:
    """Each run of lines of one stream in one write (a fast script's follower
    prints tens of thousands a second), in order with the lost-lines notes."""
    from .terminal import safe_text

    run: list[str] = []
    run_stream = "stdout"
    for entry in entries:
        if entry.lost or entry.stream != run_stream:
            if run:
                click.echo("\n".join(run), err=run_stream == "stderr")
            run, run_stream = [], entry.stream
        if entry.lost:
            click.echo(f"coral: {entry.lost} log lines dropped here by the script's log limits", err=True)
        if entry.line or entry.stream:
            run.append(safe_text(entry.line))
    if run:
        click.echo("\n".join(run), err=run_stream == "stderr")


@script.command("stop")
@click.argument("ref", metavar="ID|NAME")
@connection_options
def stop(ref, **conn) -> None:
    """Stop a script (its probes are detached; it stays listed)."""
    from .api import pb

    with AgentConnection(**conn) as agent:
        reply = agent.call("StopScript", pb.StopScriptRequest(script_id=ref, ref=ref))
    _echo_lines([f"Script stopped: {ref}", f"  ID: {reply.script_id or ref}",
                 f"  Status: {status_name(reply.status).upper()}"])


@script.command("delete")
@click.argument("ref", metavar="ID|NAME")
@connection_options
def delete(ref, **conn) -> None:
    """Delete a script (a name: every version), stopping it first."""
    from .api import pb

    with AgentConnection(**conn) as agent:
        reply = agent.call("DeleteScript", pb.DeleteScriptRequest(ref=ref))
    lines = [f"Script deleted: {ref}"]
    lines += [f"  ID: {i}" for i in reply.script_ids]
    _echo_lines(lines)


# -- helpers -----------------------------------------------------------------

def _read_code(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CODE_BYTES + 1)
    except OSError as e:
        raise CoralError(f"--file {path}: {e.strerror or e}") from None
    if len(data) > MAX_CODE_BYTES:
        raise CoralError(f"--file {path}: larger than 1 MiB (the agent's limit for a script)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CoralError(f"--file {path}: not UTF-8 text (byte {e.start})") from None


def _time(ts: Any) -> str:
    return ts.ToDatetime(tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _ago(ts: Any, now: datetime) -> str:
    seconds = int((now - ts.ToDatetime(tzinfo=timezone.utc)).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _elapsed(e: Any) -> str:
    from .durations import format_ns

    if not e.HasField("started_at"):
        return "-"
    from .api import pb

    if not e.HasField("completed_at"):
        # Cut off (the agent died) is not still going.
        return "running" if e.status == pb.SCRIPT_STATUS_RUNNING else "-"
    return format_ns(max(0, e.completed_at.ToNanoseconds() - e.started_at.ToNanoseconds()))


def _print_json(obj: dict[str, Any]) -> None:
    # ASCII escapes: safe on a terminal, exact once parsed.
    click.echo(json.dumps(obj, ensure_ascii=True))


def _echo_lines(lines: list[str]) -> None:
    from .terminal import safe_text

    for line in lines:
        click.echo(safe_text(line))


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .terminal import safe_text

    # Names, commands and reasons come from other people: Text, never markup.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for h in headers:
        table.add_column(h, no_wrap=True)
    for row in rows:
        table.add_row(*(Text(safe_text(cell)) for cell in row))
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(width=1 << 20, highlight=False)  # a pipe: rows whole, not cut to 80
    with console.capture() as capture:
        console.print(table)
    # Without the padding rich puts after the last column (grep, diff, copy).
    sys.stdout.write("".join(line.rstrip() + "\n" for line in capture.get().splitlines()))
