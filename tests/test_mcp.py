"""`coral mcp` driven by the official SDK's own stdio client (mcp.client.stdio)
against a real `coral agent start`: the tools and their schemas, a deploy of a
real script in the Deno sandbox (created_by = the client's name), its status
and logs, a query that sees its emit, a stop; the agent's refusals and a
missing agent come back as tool errors carrying the agent's one line."""

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

from coral_probe.api import pb, qpb, qpb_grpc
from test_agent_service import code_of

ROOT = Path(__file__).resolve().parent.parent
CLIENT = types.Implementation(name="coral-test-assistant", version="0.1")
TOOLS = {"coral_deploy_script", "coral_list_scripts", "coral_script_status", "coral_stop_script",
         "coral_query_sql", "coral_list_functions", "coral_list_services", "coral_query_metrics",
         "coral_query_traces"}
PAYMENTS = ROOT / "examples" / "payments" / "payments"
SESSION_S = 240
# Emits once, says so, then waits to be stopped.
EMITS_THEN_WAITS = """
import * as coral from "@coral/sdk";

await coral.emit("from_mcp", { hello: "assistant" });
console.log("emitted");
while (true) await new Promise((resolve) => setTimeout(resolve, 200));
"""


def in_session(coral, tmp_path: Path, steps) -> None:
    """Runs `await steps(session)` in an initialized MCP session with `coral mcp`,
    the whole of it bounded; the server's stderr is kept in tmp_path."""
    server = StdioServerParameters(command=sys.executable, args=["-m", "coral_probe", "mcp"],
                                   env=coral.env, cwd=str(ROOT))

    async def main() -> None:
        with anyio.fail_after(SESSION_S), open(tmp_path / "mcp.stderr", "w") as errlog:
            async with stdio_client(server, errlog=errlog) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=120, client_info=CLIENT) as session:
                    await session.initialize()
                    await steps(session)

    anyio.run(main)


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def call_ok(session: ClientSession, tool: str, /, **arguments) -> types.CallToolResult:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    return result


async def call_error(session: ClientSession, tool: str, /, **arguments) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, text_of(result)
    text = text_of(result)
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    return text


def test_an_assistant_lists_deploys_watches_queries_and_stops(agent, coral, targets, tmp_path):
    counter = os.path.realpath(targets["counter"])
    # The agent's own words for an unknown script, to compare with the tool's.
    _, agent_says = code_of(lambda: agent.stub.GetScriptStatus(pb.GetScriptStatusRequest(ref="no-such-script"),
                                                               timeout=30))

    async def steps(session: ClientSession) -> None:
        listed = await session.list_tools()
        schemas = {tool.name: tool.input_schema for tool in listed.tools}
        assert schemas.keys() == TOOLS
        assert schemas["coral_deploy_script"]["required"] == ["name", "code"]
        assert schemas["coral_deploy_script"]["properties"]["trigger"]["properties"]["type"]["enum"] == [
            "manual", "schedule", "event"]
        assert schemas["coral_deploy_script"]["properties"]["targets"]["type"] == "array"
        assert schemas["coral_script_status"]["required"] == ["script_id"]
        assert schemas["coral_script_status"]["properties"]["tail"]["type"] == "number"
        assert schemas["coral_stop_script"]["required"] == ["script_id"]
        assert schemas["coral_query_sql"]["required"] == ["sql"]
        assert {"all", "running", "stopped", "failed"} <= set(schemas["coral_list_scripts"]["properties"]
                                                              ["status"]["enum"])

        found = await call_ok(session, "coral_list_functions", binary=counter, pattern="coral_w*")
        assert "coral_work" in text_of(found)
        assert [f["name"] for f in found.structured_content["functions"]] == ["coral_work"]

        deployed = await call_ok(session, "coral_deploy_script", name="mcp-emitter", code=EMITS_THEN_WAITS,
                                 targets=["this-host"], trigger={"type": "manual"}, daemon=True)
        script_id = deployed.structured_content["script_id"]
        assert f"ID: {script_id}" in text_of(deployed)
        assert deployed.structured_content["created_by"] == CLIENT.name

        with anyio.fail_after(120):
            while True:
                status = await call_ok(session, "coral_script_status", script_id=script_id, tail=5)
                if "emitted" in text_of(status):
                    break
                await anyio.sleep(0.2)
        assert "Status: RUNNING" in text_of(status)
        assert status.structured_content["script"]["created_by"] == CLIENT.name
        assert status.structured_content["logs"][-1]["line"] == "emitted"

        running = await call_ok(session, "coral_list_scripts", status="running")
        assert "mcp-emitter" in text_of(running)

        rows = await call_ok(session, "coral_query_sql",
                             sql="SELECT e.name, e.data, s.created_by FROM emitted_events e "
                                 "JOIN scripts s ON s.id = e.script_id WHERE e.name = 'from_mcp'")
        assert rows.structured_content["columns"] == ["name", "data", "created_by"]
        [[name, data, created_by]] = rows.structured_content["rows"]
        assert (name, json.loads(data), created_by) == ("from_mcp", {"hello": "assistant"}, CLIENT.name)
        assert text_of(rows).splitlines()[0] == "1 row"

        stopped = await call_ok(session, "coral_stop_script", script_id=script_id)
        assert "Status: STOPPED" in text_of(stopped)
        after = await call_ok(session, "coral_script_status", script_id="mcp-emitter", tail=0)
        assert "Status: STOPPED" in text_of(after)

        # Refusals: the agent's message, as a tool error; the session goes on.
        assert await call_error(session, "coral_script_status", script_id="no-such-script") == agent_says
        assert "not a DELETE statement" in await call_error(session, "coral_query_sql",
                                                            sql="DELETE FROM emitted_events")
        assert "invalid arguments" in await call_error(session, "coral_deploy_script", name="no-code")
        assert "needs a cron expression" in await call_error(session, "coral_deploy_script", name="x",
                                                             code="console.log(1);", trigger={"type": "schedule"})
        assert "unknown function" in await call_error(session, "coral_list_functions", binary=counter,
                                                      pattern="no_such_function")
        again = await call_ok(session, "coral_query_sql", sql="SELECT count(*) AS n FROM emitted_events")
        assert again.structured_content["rows"] == [[1]]

    in_session(coral, tmp_path, steps)
    # Recorded by the agent itself, not only echoed by the tool.
    assert agent.terminate() == 0
    assert coral.query("SELECT created_by FROM scripts WHERE name = 'mcp-emitter'") == [(CLIENT.name,)]


def test_without_an_agent_every_tool_says_so(coral, tmp_path):
    async def steps(session: ClientSession) -> None:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        for name, arguments in [("coral_list_scripts", {}), ("coral_query_sql", {"sql": "SELECT 1"}),
                                ("coral_deploy_script", {"name": "n", "code": "console.log(1);"})]:
            text = await call_error(session, name, **arguments)
            assert text == f"no agent at unix:{coral.home}/agent.sock (start one with `coral agent start`)"

    in_session(coral, tmp_path, steps)


@pytest.mark.bpf
def test_an_assistant_asks_about_services_metrics_and_traces(agent, coral, tmp_path):
    """The fleet view's tools answer what QueryService answers on the same data:
    14 payments, customers 7 and 14 declined (return 1)."""
    result = coral.run("probe", "attach", "ProcessPayment", "--args", "2", "--service", "pay", "-o", "jsonl", "--",
                       str(PAYMENTS), "--calls", "14", "--slow-every", "0")
    assert "(recorded by the agent)" in result.stderr, result.stderr
    stub = qpb_grpc.QueryServiceStub(agent.channel)
    p90 = stub.GetPercentile(qpb.GetPercentileRequest(service="pay", metric="ProcessPayment", percentile=90),
                             timeout=60)
    slowest = stub.FindSlowTraces(qpb.FindSlowTracesRequest(service="pay", limit=3), timeout=60)

    async def steps(session: ClientSession) -> None:
        services = (await call_ok(session, "coral_list_services")).structured_content["services"]
        pay = next(s for s in services if s["name"] == "pay")
        assert (pay["instance_count"], pay["events"]) == (1, 14)

        metric = await call_ok(session, "coral_query_metrics", service="pay", function="ProcessPayment",
                               percentile=90, window="10m")
        assert metric.structured_content["value_ns"] == p90.value and metric.structured_content["count"] == 14
        rate = await call_ok(session, "coral_query_metrics", service="pay", error_rate=True)
        assert (rate.structured_content["error_count"], rate.structured_content["total_count"]) == (2, 14)
        assert "2 of 14 calls" in text_of(rate)

        errors = (await call_ok(session, "coral_query_traces", service="pay", kind="errors")).structured_content
        assert errors["total_count"] == 2
        assert sorted(t["args"][1] for t in errors["traces"]) == [7, 14]  # the customer ids
        assert {t["return_value"] for t in errors["traces"]} == {1}
        slow = (await call_ok(session, "coral_query_traces", service="pay", kind="slow", limit=3)).structured_content
        assert [t["trace_id"] for t in slow["traces"]] == [t.trace_id for t in slowest.traces]

        unknown = await call_error(session, "coral_query_metrics", service="nope", error_rate=True)
        assert unknown.startswith("unknown service 'nope': known:") and "pay" in unknown
        assert "percentile" in await call_error(session, "coral_query_metrics", service="pay")
        assert "window" in await call_error(session, "coral_query_traces", service="pay", kind="slow",
                                            window="soon")

    in_session(coral, tmp_path, steps)
