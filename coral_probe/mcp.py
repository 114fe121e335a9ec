"""`coral mcp`: an MCP server on stdio (the official `mcp` SDK's low-level
Server) that lets an AI assistant deploy and watch scripts, query the
agent's store and find functions to probe, all through the agent's gRPC API.

Tools: coral_deploy_script, coral_list_scripts, coral_script_status (input
schemas of seed 002; `targets` is accepted and ignored on one host),
coral_stop_script, coral_query_sql (QueryService.ExecuteQuery: the read-only
guardrails of db.query), coral_list_functions (AgentService.ListFunctions),
and the fleet view's questions, each one QueryService call answered by the
query functions the SDK's metrics.*/traces.* use: coral_list_services,
coral_query_metrics (a latency percentile or an error rate) and
coral_query_traces (slow or failed calls).
A refusal of the agent, an unreachable agent or arguments off the schema come
back as a tool error (isError) carrying the one-line message. A deployment
records the MCP client's name (its initialize clientInfo) as created_by.

stdout carries only the protocol: the SDK points fd 1 at stderr while it
serves, and logs go to stderr."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
import jsonschema
from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from . import __version__
from .agent_client import (CALL_TIMEOUT_S, DEPLOY_TIMEOUT_S, STATUS_FILTERS, AgentConnection, execution_dict,
                           script_dict, script_trigger, status_filter, status_name, trigger_text, wire_seconds)
from .errors import CoralError

log = logging.getLogger("coral.mcp")

DEFAULT_QUERY_ROWS = 100      # an assistant's context is small; it may ask for up to 10,000
DEFAULT_FUNCTIONS = 200
DEFAULT_LOG_LINES = 20
MAX_LOG_LINES = 1000
DEFAULT_TRACES = 10
_WINDOW = {"type": "string", "description": "How far back, e.g. 5m, 1h (default 1h)"}

TOOLS = [
    types.Tool(
        name="coral_deploy_script",
        description="Deploy a TypeScript script to agents for custom observability logic. The agent "
                    "type-checks it (imports: only @coral/sdk) before accepting it; deploying an existing "
                    "name makes a new version and stops the old one.",
        input_schema={
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Human-readable script name"},
                "code": {"type": "string", "description": "TypeScript source code"},
                "targets": {"type": "array", "items": {"type": "string"},
                            "description": "Target agent IDs or service names (empty = all agents; "
                                           "one host here: ignored)"},
                "trigger": {
                    "type": "object",
                    "properties": {
                        "type": {"enum": ["manual", "schedule", "event"]},
                        "cron": {"type": "string", "description": "schedule: five-field cron expression"},
                        "condition": {"type": "string",
                                      "description": "event: read-only SQL; the script runs when it "
                                                     "first returns a row"},
                        "check_interval_seconds": {"type": "integer", "minimum": 0,
                                                   "description": "event: how often the condition is "
                                                                  "checked, in seconds (0 or absent: the "
                                                                  "agent's default, 30)"},
                    },
                },
                "params": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "Passed to the script (coral.params())"},
                "daemon": {"type": "boolean", "description": "Long-running (timeout up to 24 h)"},
                "timeout_seconds": {"type": "integer", "minimum": 0,
                                    "description": "Seconds before a run is killed, up to 86400 (0 or "
                                                   "absent: the agent's default, 60, daemon 86400)"},
            },
            "required": ["name", "code"],
        }),
    types.Tool(
        name="coral_list_scripts",
        description="List deployed scripts",
        input_schema={
            "type": "object",
            "properties": {"status": {"enum": list(STATUS_FILTERS), "description": "Filter by status"}},
        }),
    types.Tool(
        name="coral_script_status",
        description="Get execution status and logs for a script",
        input_schema={
            "type": "object",
            "properties": {
                "script_id": {"type": "string", "description": "Script id or name"},
                "tail": {"type": "number", "description": "Show last N log lines"},
            },
            "required": ["script_id"],
        }),
    types.Tool(
        name="coral_stop_script",
        description="Stop a script (its probes are detached; it stays listed)",
        input_schema={
            "type": "object",
            "properties": {"script_id": {"type": "string", "description": "Script id or name"}},
            "required": ["script_id"],
        }),
    types.Tool(
        name="coral_query_sql",
        description="Run one read-only SELECT on the agent's DuckDB. Tables: probe_events, probe_sessions, "
                    "emitted_events, scripts, script_executions, script_logs, system_metrics_local.",
        input_schema={
            "type": "object",
            "properties": {
                "sql": {"type": "string", "description": "One SELECT statement"},
                "max_rows": {"type": "integer", "minimum": 1, "maximum": 10_000,
                             "description": f"Row cap (default {DEFAULT_QUERY_ROWS})"},
            },
            "required": ["sql"],
        }),
    types.Tool(
        name="coral_list_functions",
        description="Functions a binary or a running process offers to probes (the program's first, "
                    "then its libraries'), to choose what a script should trace.",
        input_schema={
            "type": "object",
            "properties": {
                "binary": {"type": "string", "description": "Path or library name (libc)"},
                "pid": {"type": "integer", "minimum": 1,
                        "description": "A process: its program and the libraries it maps"},
                "pattern": {"type": "string", "description": "Shell wildcard (default *)"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10_000,
                          "description": f"At most this many (default {DEFAULT_FUNCTIONS})"},
            },
        }),
    types.Tool(
        name="coral_list_services",
        description="Services the agent knows (named targets: probed binaries), with their instances "
                    "(processes seen), events and last event.",
        input_schema={"type": "object", "properties": {}}),
    types.Tool(
        name="coral_query_metrics",
        description="A latency percentile of a service's probed function (from a mergeable sketch, within "
                    "1%), or the service's error rate (calls returning non-zero).",
        input_schema={
            "type": "object",
            "properties": {
                "service": {"type": "string"},
                "function": {"type": "string", "description": "The probed function (needed for a percentile)"},
                "percentile": {"type": "number", "exclusiveMinimum": 0, "maximum": 100,
                               "description": "0-100, e.g. 99"},
                "error_rate": {"type": "boolean", "description": "The error rate instead of a percentile"},
                "window": _WINDOW,
            },
            "required": ["service"],
        }),
    types.Tool(
        name="coral_query_traces",
        description="A service's slowest calls (at least threshold_ms) or its latest failed calls "
                    "(non-zero return), with pid, tid, args and return value.",
        input_schema={
            "type": "object",
            "properties": {
                "service": {"type": "string"},
                "kind": {"enum": ["slow", "errors"]},
                "function": {"type": "string", "description": "Only this probed function"},
                "threshold_ms": {"type": "number", "minimum": 0, "description": "slow: at least this long"},
                "window": _WINDOW,
                "limit": {"type": "integer", "minimum": 1, "maximum": 10_000,
                          "description": f"At most this many (default {DEFAULT_TRACES})"},
            },
            "required": ["service", "kind"],
        }),
]
_SCHEMAS = {tool.name: tool.input_schema for tool in TOOLS}


class ToolError(CoralError):
    """Arguments the agent would refuse anyway, said before any RPC."""


class Tools:
    """Each tool: arguments (validated) → one or two RPCs → (text, structured)."""

    def __init__(self, agent: AgentConnection):
        self.agent = agent

    def call(self, name: str, arguments: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        handler: Callable[..., tuple[str, dict[str, Any]]] = getattr(self, name.removeprefix("coral_"))
        return handler(arguments, client_name)

    def deploy_script(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import pb

        trigger = args.get("trigger") or {}
        # The agent refuses what is too big or out of bounds, by its own words.
        script = pb.Script(name=args["name"], code=args["code"], params=args.get("params") or {},
                           trigger=script_trigger(trigger.get("type", "manual"), cron=trigger.get("cron"),
                                                  condition=trigger.get("condition"),
                                                  check_interval_s=trigger.get("check_interval_seconds", 0)),
                           mode=pb.SCRIPT_MODE_DAEMON if args.get("daemon") else pb.SCRIPT_MODE_AD_HOC,
                           timeout_seconds=wire_seconds(args.get("timeout_seconds", 0)), created_by=client_name)
        reply = self.agent.call("DeployScript", pb.DeployScriptRequest(script=script), timeout=DEPLOY_TIMEOUT_S)
        out = {"script_id": reply.script_id, "name": args["name"], "version": reply.version,
               "status": status_name(reply.status), "replaced_script_id": reply.replaced_script_id or None,
               "created_by": client_name}
        text = (f"Script deployed: {args['name']} (v{reply.version})\nID: {reply.script_id}\n"
                f"Status: {out['status'].upper()}")
        if reply.replaced_script_id:
            text += f"\nReplaces: {reply.replaced_script_id}"
        return text, out

    def list_scripts(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import pb

        status = args.get("status", "all")
        reply = self.agent.call("ListScripts", pb.ListScriptsRequest(status=status_filter(status)))
        scripts = [script_dict(s) for s in reply.scripts]
        if not scripts:
            return ("no scripts" if status == "all" else f"no {status} scripts"), {"scripts": []}
        lines = [f"{s.id}  {s.name} v{s.version}  {status_name(s.status).upper()}  {trigger_text(s.trigger)}"
                 + (f"  by {s.created_by}" if s.created_by else "") for s in reply.scripts]
        return "\n".join(lines), {"scripts": scripts}

    def script_status(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import pb

        ref = args["script_id"]
        tail = args.get("tail", DEFAULT_LOG_LINES)
        if tail != int(tail) or not 0 <= tail <= MAX_LOG_LINES:
            raise ToolError(f"tail {tail}: a whole number of lines, 0 to {MAX_LOG_LINES}")
        reply = self.agent.call("GetScriptStatus", pb.GetScriptStatusRequest(script_id=ref, ref=ref))
        logs = []
        if int(tail) and reply.executions:
            request = pb.StreamScriptLogsRequest(script_id=ref, ref=ref, tail=int(tail))
            logs = [e for batch in self.agent.stream("StreamScriptLogs", request, timeout=CALL_TIMEOUT_S)
                    for e in batch.entries if e.line or e.stream][-int(tail):]
        s = reply.script
        lines = [f"Script: {s.name or ref} (v{s.version})", f"ID: {reply.script_id or s.id}",
                 f"Status: {status_name(reply.status).upper()}", f"Trigger: {trigger_text(s.trigger)}"]
        if s.created_by:
            lines.append(f"Created by: {s.created_by}")
        for e in reply.executions:
            exit_code = f", exit code {e.exit_code}" if e.has_exit_code else ""
            reason = f" ({e.end_reason})" if e.end_reason else ""
            lines.append(f"Execution {e.execution_id}: {status_name(e.status).upper()}{exit_code}{reason}")
        if logs:
            lines.append(f"Recent logs (last {len(logs)} lines):")
            lines += [("[stderr] " if e.stream == "stderr" else "") + e.line for e in logs]
        out = {"script_id": reply.script_id, "status": status_name(reply.status),
               "script": script_dict(s) if reply.HasField("script") else None,
               "executions": [execution_dict(e) for e in reply.executions],
               "logs": [{"stream": e.stream, "line": e.line, "execution_id": e.execution_id} for e in logs]}
        return "\n".join(lines), out

    def stop_script(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import pb

        ref = args["script_id"]
        reply = self.agent.call("StopScript", pb.StopScriptRequest(script_id=ref, ref=ref))
        status = status_name(reply.status)
        return (f"Script stopped: {ref}\nID: {reply.script_id or ref}\nStatus: {status.upper()}",
                {"script_id": reply.script_id, "status": status})

    def query_sql(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import query_client

        max_rows = args.get("max_rows", DEFAULT_QUERY_ROWS)
        reply = self.agent.rpc(lambda: query_client.ask(self.agent.channel, args["sql"], max_rows=max_rows,
                                                   timeout_s=CALL_TIMEOUT_S))
        # The rows as the wire has them: JSON values, timestamps as ISO text, big integers exact.
        rows = json.loads(reply.rows_json)
        count = f"{reply.row_count} row{'' if reply.row_count == 1 else 's'}"
        if reply.truncated:
            count += f" (the first {max_rows}; more exist: raise max_rows or add a LIMIT)"
        text = "\n".join([count, json.dumps(list(reply.columns)), *(json.dumps(row) for row in rows)])
        return text, {"columns": list(reply.columns), "column_types": list(reply.column_types), "rows": rows,
                      "row_count": reply.row_count, "truncated": reply.truncated}

    def list_functions(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import query_client

        if not args.get("binary") and not args.get("pid"):
            raise ToolError("give a binary or a pid")
        reply = self.agent.rpc(lambda: query_client.list_functions(
            self.agent.channel, binary=args.get("binary", ""), pid=args.get("pid", 0),
            pattern=args.get("pattern", ""), limit=args.get("limit", DEFAULT_FUNCTIONS), timeout_s=CALL_TIMEOUT_S))
        functions = [{"name": f.name, "file": f.file, "address": f.address, "size": f.size}
                     for f in reply.functions]
        lines = []
        for i, f in enumerate(functions):
            if i == 0 or f["file"] != functions[i - 1]["file"]:
                lines.append(f"{f['file']}:")
            lines.append(f"  {f['name']}  0x{f['address']:x}  {f['size']} bytes")
        if reply.truncated:
            lines.append(f"(more functions match: raise limit above {len(functions)} or narrow the pattern)")
        return "\n".join(lines) or "no functions", {"functions": functions, "truncated": reply.truncated}


    def list_services(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import qpb, qpb_grpc

        reply = self.agent.rpc(lambda: qpb_grpc.QueryServiceStub(self.agent.channel).ListServices(
            qpb.ListServicesRequest(), timeout=CALL_TIMEOUT_S))
        services = [_as_dict(s) for s in reply.services]
        lines = [f"{s.name} on {s.agent_id}: {s.instance_count} instances, {s.events} events"
                 + (f", last {s.last_seen.ToJsonString()}" if s.HasField("last_seen") else "")
                 for s in reply.services]
        return "\n".join(lines) or "no services yet", {"services": services}

    def query_metrics(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import qpb, qpb_grpc
        from .durations import format_ns

        stub = qpb_grpc.QueryServiceStub(self.agent.channel)
        service, function, window = args["service"], args.get("function", ""), _window_ms(args)
        if args.get("error_rate"):
            if "percentile" in args:
                raise ToolError("give percentile or error_rate, not both")
            rate = self.agent.rpc(lambda: stub.GetErrorRate(qpb.GetErrorRateRequest(
                service=service, function=function, time_range_ms=window), timeout=CALL_TIMEOUT_S))
            return (f"{service}{' ' + function if function else ''}: error rate {rate.rate:.2%} "
                    f"({rate.error_count} of {rate.total_count} calls)"), _as_dict(rate)
        if "percentile" not in args or not function:
            raise ToolError("a percentile needs percentile and function (or ask for error_rate)")
        answer = self.agent.rpc(lambda: stub.GetPercentile(qpb.GetPercentileRequest(
            service=service, metric=function, percentile=args["percentile"], time_range_ms=window),
            timeout=CALL_TIMEOUT_S))
        out = {"value_ns": answer.value, "count": answer.count, "relative_error": answer.sketch.relative_accuracy}
        return (f"{service} {function}: p{args['percentile']:g} = {format_ns(answer.value)} over {answer.count} calls"
                f" (within {answer.sketch.relative_accuracy:.0%})"), out

    def query_traces(self, args: dict[str, Any], client_name: str) -> tuple[str, dict[str, Any]]:
        from .api import qpb, qpb_grpc
        from .durations import format_ns

        stub = qpb_grpc.QueryServiceStub(self.agent.channel)
        common = {"service": args["service"], "function": args.get("function", ""), "time_range_ms": _window_ms(args),
                  "limit": args.get("limit", DEFAULT_TRACES)}
        if args["kind"] == "slow":
            request = qpb.FindSlowTracesRequest(min_duration_ns=round(args.get("threshold_ms", 0) * 1e6), **common)
            reply = self.agent.rpc(lambda: stub.FindSlowTraces(request, timeout=CALL_TIMEOUT_S))
        else:
            if "threshold_ms" in args:
                raise ToolError("threshold_ms applies to kind slow")
            reply = self.agent.rpc(lambda: stub.FindErrorTraces(qpb.FindErrorTracesRequest(**common),
                                                                timeout=CALL_TIMEOUT_S))
        lines = [f"{len(reply.traces)} of {reply.total_count} calls"]
        lines += [f"{t.function} {format_ns(t.duration_ns)} ret={t.return_value} pid={t.pid} tid={t.tid} "
                  f"args={list(t.args)} ({t.trace_id})" for t in reply.traces]
        return "\n".join(lines), {"traces": [_as_dict(t) for t in reply.traces], "total_count": reply.total_count}


def _window_ms(args: dict[str, Any]) -> int:
    from .durations import parse_duration_ns

    return parse_duration_ns(args["window"], option="window") // 1_000_000 if args.get("window") else 0


def _as_dict(message: Any) -> dict[str, Any]:
    """A reply as JSON values: 64-bit integers as numbers (json_format would make them strings)."""
    from google.protobuf.json_format import MessageToDict

    out = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    for field in message.DESCRIPTOR.fields:
        if field.name in out and field.cpp_type in (field.CPPTYPE_INT64, field.CPPTYPE_UINT64):
            value = getattr(message, field.name)
            out[field.name] = list(value) if field.is_repeated else value
    return out


def _client_name(ctx: ServerRequestContext) -> str:
    params = ctx.session.client_params
    name = params.client_info.name if params is not None else ""
    return name or "mcp"


def build_server(tools: Tools) -> Server:
    async def list_tools(ctx: ServerRequestContext,
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        schema = _SCHEMAS.get(params.name)
        try:
            if schema is None:
                raise ToolError(f"unknown tool {params.name}")
            try:
                jsonschema.validate(arguments, schema)
            except jsonschema.ValidationError as e:
                where = "/".join(str(p) for p in e.absolute_path)
                raise ToolError(f"invalid arguments{f' at {where}' if where else ''}: {e.message}") from None
            # gRPC calls block: a worker thread, so the session keeps answering (pings, cancels).
            text, structured = await anyio.to_thread.run_sync(tools.call, params.name, arguments, _client_name(ctx))
        except CoralError as e:
            log.info("%s: %s", params.name, e)
            return types.CallToolResult(content=[types.TextContent(text=str(e))], is_error=True)
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)

    return Server("coral", version=__version__, instructions=_INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


_INSTRUCTIONS = ("coral runs TypeScript scripts (@coral/sdk) on a Linux host's agent: eBPF probes on functions, "
                 "emits stored in DuckDB. Find functions with coral_list_functions, deploy with "
                 "coral_deploy_script, watch with coral_script_status, read results with coral_query_sql "
                 "(emitted_events, probe_events), stop with coral_stop_script. What was probed: "
                 "coral_list_services, then coral_query_metrics and coral_query_traces per service.")


def serve(*, agent: str | None, tls_ca: str | None, tls_cert: str | None, tls_key: str | None,
          token_file: str | None) -> None:
    """Serves one MCP client on stdin/stdout until it closes stdin."""
    logging.basicConfig(level=logging.WARNING, format="coral mcp: %(message)s")  # stderr
    log.setLevel(logging.INFO)  # the tool errors, not the SDK's chatter
    with AgentConnection(agent, tls_ca, tls_cert, tls_key, token_file) as connection:
        server = build_server(Tools(connection))

        async def run() -> None:
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())

        anyio.run(run)
