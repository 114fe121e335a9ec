"""`coral`: the command line. Every failure is one line on stderr and a
non-zero exit; CORAL_DEBUG=1 shows tracebacks for bugs."""

from . import stopping

stopping.defer_while_starting()  # before the imports: a Ctrl-C now must not land inside one

import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from . import __version__  # noqa: E402
from .agent_client import connection_options  # noqa: E402
from .durations import parse_duration_ns  # noqa: E402
from .errors import CoralError  # noqa: E402
from .terminal import safe_text  # noqa: E402

_COMMAND_KEY = "command"
_ALLOW_PROBE_HELP = ("Let the script probe more than its target (repeatable): kernel[:FUNCTION], "
                     "tracepoint[:CATEGORY:NAME], binary[:PATH], pid[:PID]; shell-style patterns.")


# These stop on a signal the way they stop at --duration: detach, drain,
# write, account (coral_probe/stopping.py). Every other command is simply interrupted.
_STOPS_GRACEFULLY = ("probe", "run")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="coral")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Attach eBPF probes to running programs and stream every hit."""
    if ctx.invoked_subcommand not in _STOPS_GRACEFULLY:
        stopping.allow_interrupts()


@cli.group()
def probe() -> None:
    """Probe functions, kernel functions and tracepoints."""


@probe.command("attach", context_settings={"max_content_width": 100})
@click.argument("functions", nargs=-1)
@click.option("-b", "--binary", metavar="PATH", help="Executable or shared library (`libc` style names too).")
@click.option("-p", "--pid", type=int, help="Probe this running process (its executable unless --binary).")
@click.option("--kernel", "kernel_functions", multiple=True, metavar="FUNCTION",
              help="Kernel function (kprobe, fentry fallback).")
@click.option("-t", "--tracepoint", "tracepoints", multiple=True, metavar="CATEGORY:NAME", help="Kernel tracepoint.")
@click.option("-u", "--usdt", "usdt", multiple=True, metavar="PROVIDER:NAME",
              help="USDT marker (sys/sdt.h; * in NAME matches several): an event per hit with its arguments.")
@click.option("--ret/--no-ret", "with_return", default=True, show_default=True,
              help="Return probes: latency and return value.")
@click.option("--args", "nargs", type=click.IntRange(0, 6), default=0, show_default=True,
              help="Integer arguments to capture (0-6).")
@click.option("--min-duration", metavar="DURATION", help="Only calls at least this slow, filtered in the kernel.")
@click.option("--sample", type=int, default=1, show_default=True, help="Keep 1 in N calls, in the kernel.")
@click.option("--duration", metavar="DURATION", help="Stop after this long (e.g. 30s).")
@click.option("-o", "--output", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="DuckDB file [default: $CORAL_HOME/agent.duckdb].")
@click.option("--max-functions", type=click.IntRange(1, 1 << 20), default=64, show_default=True,
              help="Cap on functions a wildcard may select.")
@click.option("--script", "script", type=click.Path(dir_okay=False, path_type=Path),
              help="TypeScript filter script: its trace.uprobe(FUNCTION) joins these probes.")
@click.option("--service", metavar="NAME", help="The session's service [default: the agent's name for the binary, "
                                                 "else its basename].")
@click.option("--ring-pages", type=int, default=1024, hidden=True, help="Ring buffer size in pages.")
@click.option("--dump-bpf", is_flag=True, hidden=True, help="Print the generated BPF program and exit.")
@click.pass_context
def probe_attach(ctx: click.Context, functions, binary, pid, kernel_functions, tracepoints, usdt, with_return, nargs,
                 min_duration, sample, duration, output, db_path, script, max_functions, service, ring_pages,
                 dump_bpf) -> None:
    """Attach to FUNCTION... and stream every call.

    \b
    coral probe attach ProcessPayment --binary ./payments
    coral probe attach 'Process*' --pid 4242 --args 2 -o jsonl
    coral probe attach ProcessPayment --min-duration 500ms -- ./payments --calls 100
    coral probe attach --tracepoint syscalls:sys_enter_openat --duration 5s
    coral probe attach --usdt python:function__entry --pid 4242
    """
    from .plan import ProbeOptions
    from .session import AttachRequest, run_attach
    from .symbols import TooManyFunctions

    options = ProbeOptions(
        with_return=with_return, nargs=nargs,
        min_duration_ns=parse_duration_ns(min_duration, option="--min-duration") if min_duration else 0,
        sample=sample, ringbuf_pages=ring_pages, max_functions=max_functions)
    request = AttachRequest(
        functions=list(functions), kernel_functions=list(kernel_functions), tracepoints=list(tracepoints),
        usdt=list(usdt),
        binary=binary, pid=pid, command=(ctx.obj or {}).get(_COMMAND_KEY, []), options=options,
        duration_s=parse_duration_ns(duration, option="--duration") / 1e9 if duration else None,
        output=output, db_path=db_path, dump_bpf=dump_bpf, script=script, service=service)
    try:
        code = run_attach(request)
    except TooManyFunctions as e:
        # Here the cap is the user's to raise (a script's functions.get has none).
        raise CoralError(f"{e} or raise --max-functions") from None
    ctx.exit(code)


@probe.command("list")
@click.option("--usdt", "usdt", is_flag=True, help="USDT markers (the only listing so far).")
@click.option("-b", "--binary", metavar="PATH", help="Executable or shared library (`libc` style names too).")
@click.option("-p", "--pid", type=int, help="Every file this process maps (its executable unless --binary).")
@click.pass_context
def probe_list(ctx: click.Context, usdt: bool, binary: str | None, pid: int | None) -> None:
    """List what can be probed in a target: --usdt, its USDT markers.

    \b
    coral probe list --usdt --binary /usr/bin/python3
    coral probe list --usdt --pid 4242
    coral probe list --usdt -- ./app
    """
    from .targets import check_pid, command_program, display_path, resolve_binary
    from .usdt import list_markers

    if not usdt:
        raise click.UsageError("give --usdt: USDT markers are what `probe list` lists (functions: a script's "
                               "functions.list)")
    command = (ctx.obj or {}).get(_COMMAND_KEY, [])
    program = command_program(command) if command else None
    if binary is None and pid is None and program is None:
        raise CoralError("no target: give --binary PATH, --pid PID or -- COMMAND [ARGS]")
    if pid is not None:
        check_pid(pid)
    target = resolve_binary(binary, pid, program=program) if binary is not None else None
    markers = list_markers(target, pid, None if target else program)
    for m in markers:
        guard = "  semaphore" if m.semaphore else ""
        click.echo(safe_text(f"{m.spec}  args={m.nargs}  locations={m.locations}{guard}  {display_path(m.path, pid)}"))
    if not markers:
        click.echo("no USDT markers", err=True)


@cli.command("run", context_settings={"max_content_width": 100})
@click.argument("script", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--pid", type=int, help="Target process for the script's probes.")
@click.option("-b", "--binary", metavar="PATH", help="Target binary or library for the script's probes.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Passed to the script (coral.params()).")
@click.option("--timeout", type=float, help="Seconds before the script is killed [default: 60, --daemon: 86400].")
@click.option("--daemon", is_flag=True, help="Long-running: timeout up to 24 h.")
@click.option("--watch", is_flag=True, help="Run again whenever the script file changes.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="DuckDB file [default: $CORAL_HOME/agent.duckdb].")
@click.option("--allow-probe", "allow_probe", multiple=True, metavar="KIND[:PATTERN]", help=_ALLOW_PROBE_HELP)
@connection_options
@click.option("--colony", metavar="unix:PATH|HOST:PORT", help="Run it on the colony's agents of --targets SERVICE.")
@click.option("--targets", metavar="SERVICE", help="With --colony: the service whose agents run it.")
@click.pass_context
def run(ctx: click.Context, script, pid, binary, params, timeout, daemon, watch, db_path, allow_probe,
        colony, targets, **remote) -> None:
    """Run SCRIPT.ts in the sandbox, against a target.

    \b
    coral run slow.ts -- ./payments --calls 100
    coral run report.ts --pid 4242 --param threshold=500
    coral run syscalls.ts --pid 4242 --allow-probe 'tracepoint:syscalls:*'
    coral run check.ts --agent 10.0.0.5:7443 --tls-ca ca.pem
    coral run check.ts --colony unix:/root/.coral/colony.sock --targets payments
    """
    from .agent.policy import ProbePolicy
    from .agent.run import RunRequest, parse_params, run_script

    if colony is not None or targets is not None or any(v is not None for v in remote.values()):
        from .api.remote_run import run_remote

        ctx.exit(run_remote(script, colony=colony, targets=targets, **remote, params=parse_params(params),
                            timeout_s=timeout, daemon=daemon, pid=pid, binary=binary,
                            local_only={"--watch": watch, "--db": db_path, "--allow-probe": allow_probe,
                                        "-- COMMAND": (ctx.obj or {}).get(_COMMAND_KEY)}))
    request = RunRequest(script=script, binary=binary, pid=pid, command=(ctx.obj or {}).get(_COMMAND_KEY, []),
                         params=parse_params(params), timeout_s=timeout, daemon=daemon, watch=watch,
                         db_path=db_path, policy=ProbePolicy.parse(allow_probe))
    ctx.exit(run_script(request))


@cli.group("agent", invoke_without_command=True)
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False),
              help="Without a subcommand: serve only the SDK socket at this path (SDK tests, benchmarks).")
@click.option("--token-file", metavar="PATH",
              help="File (mode 600) or /dev/fd/N holding the token the SDK must present (CORAL_TOKEN).")
@click.option("-p", "--pid", type=int)
@click.option("-b", "--binary", metavar="PATH")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--max-queued-events", type=click.IntRange(1), help="Per-subscriber queue before events are dropped.")
@click.option("--allow-probe", "allow_probe", multiple=True, metavar="KIND[:PATTERN]", help=_ALLOW_PROBE_HELP)
@click.pass_context
def agent(ctx: click.Context, socket_path, token_file, pid, binary, db_path, max_queued_events, allow_probe) -> None:
    """The resident agent (`coral agent start`).

    Without a subcommand, `coral agent --socket PATH --token-file F` serves
    only the SDK socket for scripts started elsewhere (SDK tests, benchmarks).
    """
    given = [name for name, value in (("--socket", socket_path), ("--token-file", token_file), ("--pid", pid),
                                      ("--binary", binary), ("--db", db_path),
                                      ("--max-queued-events", max_queued_events),
                                      ("--allow-probe", allow_probe)) if value]
    if ctx.invoked_subcommand is not None:
        if given:
            raise click.UsageError(f"{given[0]} goes after `coral agent {ctx.invoked_subcommand}` "
                                   "(or without a subcommand, for the SDK socket alone)")
        return
    if not socket_path or not token_file:
        raise click.UsageError("`coral agent` needs a subcommand (start), or --socket PATH and --token-file PATH "
                               "to serve the SDK socket alone")
    from .agent.policy import ProbePolicy
    from .agent.serve import serve

    serve(socket_path, token_file, pid, binary, db_path, max_queued_events, ProbePolicy.parse(allow_probe))


@agent.command("start")
@click.option("--listen", metavar="HOST:PORT", help="Also serve on TCP (needs --tls-cert/--tls-key or --token-file).")
@click.option("--tls-cert", metavar="PATH", help="Server certificate (PEM) for --listen.")
@click.option("--tls-key", metavar="PATH", help="Its private key (PEM).")
@click.option("--client-ca", metavar="PATH", help="Mutual TLS: clients need a certificate signed by this CA.")
@click.option("--token-file", metavar="PATH", help="Bearer token every TCP call must carry (one line).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="DuckDB file [default: $CORAL_HOME/agent.duckdb].")
@click.option("--allow-probe", "allow_probe", multiple=True, metavar="KIND[:PATTERN]",
              help="Let deployed scripts probe this (repeatable): kernel[:FUNCTION], tracepoint[:CATEGORY:NAME], "
                   "binary[:PATH], pid[:PID]; shell-style patterns.")
@click.option("--log-lines-per-second", "log_lines_per_s", type=click.IntRange(1, 10_000_000),
              default=200, show_default=True, metavar="N",  # log_pump.LINES_PER_S, not imported by every command
              help="Log lines each execution stores a second (bursts of 10x); past it lines are dropped, counted.")
@click.option("--service", "services", multiple=True, metavar="NAME=BINARY",
              help="Name the sessions probing BINARY (repeatable); queries ask for services by name.")
@click.option("--id", "agent_id", metavar="AGENT_ID", help="This agent's id in the fleet [default: the hostname].")
@click.option("--emits-per-second", "emits_per_s", type=click.IntRange(1, 10_000_000), default=100,
              show_default=True, metavar="N",  # handlers.EMITS_PER_S, not imported by every command
              help="Emits each execution may make a second (bursts of 10x); past it emits are refused, counted.")
@click.option("--colony", metavar="unix:PATH|HOST:PORT",
              help="Push emitted events to this colony (at least once: unacknowledged ones are sent again).")
@click.option("--colony-tls-ca", metavar="PATH", help="CA that signed the colony's certificate (HOST:PORT).")
@click.option("--colony-tls-cert", metavar="PATH", help="Client certificate for a colony with mutual TLS.")
@click.option("--colony-tls-key", metavar="PATH", help="Its private key.")
@click.option("--colony-token-file", metavar="PATH", help="Bearer token for the colony's TCP port.")
@click.pass_context
def agent_start(ctx: click.Context, listen, tls_cert, tls_key, client_ca, token_file, db_path, allow_probe,
                log_lines_per_s, services, agent_id, emits_per_s, colony, colony_tls_ca, colony_tls_cert,
                colony_tls_key, colony_token_file) -> None:
    """Run the resident agent in the foreground (SIGTERM stops it cleanly).

    \b
    coral agent start
    coral agent start --listen 0.0.0.0:7443 --tls-cert agent.pem --tls-key agent.key --client-ca ca.pem
    coral agent start --id web-1 --service payments=/opt/pay/payments
    coral agent start --id web-1 --colony colony.example:7444 --colony-tls-ca ca.pem
    """
    import socket

    from .agent.policy import ProbePolicy
    from .api.agent_main import start
    from .services import ServiceMap, check_name

    colony_options = {"--colony-tls-ca": colony_tls_ca, "--colony-tls-cert": colony_tls_cert,
                      "--colony-tls-key": colony_tls_key, "--colony-token-file": colony_token_file}
    if colony is None and (given := [name for name, value in colony_options.items() if value is not None]):
        raise click.UsageError(f"{given[0]} goes with --colony")
    if colony is not None:
        from .agent.emit_pusher import ColonyOptions

        colony = ColonyOptions(colony, tls_ca=colony_tls_ca, tls_cert=colony_tls_cert, tls_key=colony_tls_key,
                               token_file=colony_token_file)
    ctx.exit(start(listen=listen, tls_cert=tls_cert, tls_key=tls_key, client_ca=client_ca, token_file=token_file,
                   db_path=db_path, policy=ProbePolicy.parse(allow_probe), log_lines_per_s=log_lines_per_s,
                   services=ServiceMap.parse(services),
                   agent_id=check_name(agent_id, "--id") if agent_id is not None else socket.gethostname(),
                   emits_per_s=emits_per_s, colony=colony))


@cli.command()
def doctor() -> None:
    """Check what this machine can do: privileges, BTF, probes, bcc, headers, Deno."""
    from .doctor import run_checks

    ok = True
    for check in run_checks():
        color = {"ok": "green", "warn": "yellow", "fail": "red", "info": "cyan"}[check.status]
        fix = f"  [dim]fix: {check.fix}[/dim]" if check.fix else ""
        label = check.status.upper() if check.status == "fail" else check.status
        click.echo(_rich(f"[{color}]{label:>4}[/{color}]  {check.name:<15} {check.detail}{fix}"))
        ok &= check.status != "fail"
    sys.exit(0 if ok else 1)


# `coral script …` (deployed scripts on a resident agent): declared in
# script_cli.py, which imports grpc and rich only when one of them runs.
from .query_cli import query as _query_group  # noqa: E402
from .script_cli import script as _script_group  # noqa: E402

cli.add_command(_query_group)
cli.add_command(_script_group)
from .colony_cli import colony as _colony_group  # noqa: E402

cli.add_command(_colony_group)


@cli.command("mcp")
@connection_options
def mcp(**conn) -> None:
    """Serve MCP on stdio for AI assistants: deploy scripts, query, find functions.

    \b
    Claude Desktop (claude_desktop_config.json):
      "mcpServers": {"coral": {"command": "coral", "args": ["mcp"]}}
    """
    from .mcp import serve

    serve(**conn)


def _rich(markup: str) -> str:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    with console.capture() as capture:
        console.print(markup)
    return capture.get().rstrip("\n")


def main(argv: list[str] | None = None) -> None:
    code = _main(argv)
    # Everything coral owns is closed by now: probes detached, DuckDB closed
    # (checkpointed), Deno reaped, temporary files removed. The interpreter's
    # own teardown (LLVM's and DuckDB's static destructors, module cleanup)
    # would add ~0.2 s between a Ctrl-C and the prompt, for nothing.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a closed stream
            pass
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, command = args[:cut], args[cut + 1:]
    try:
        code = cli.main(args=args, prog_name="coral", obj={_COMMAND_KEY: command}, standalone_mode=False)
    except CoralError as e:
        # Messages quote what they refuse: query data, script names, paths.
        click.echo(f"coral: {safe_text(str(e))}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"coral: {e.format_message()}", err=True)
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        return 130
    except Exception as e:  # noqa: BLE001 - the one place bugs become one line
        if os.environ.get("CORAL_DEBUG"):
            raise
        click.echo(f"coral: internal error: {type(e).__name__}: {safe_text(str(e))} "
                   "(CORAL_DEBUG=1 shows the traceback)", err=True)
        return 70
    return code if isinstance(code, int) else 0
