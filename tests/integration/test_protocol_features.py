"""What a tool in a worker process can do through the MCP protocol, against real processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import RunningSupervisor, spawn_supervisor

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Any:
    running = spawn_supervisor("--tools", "tests.integration.call_tools")
    yield running
    assert running.stop() == 0


def text(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


async def answer_sampling(
    context: Any, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    prompt = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"echo of {prompt!r} ({params.max_tokens} tokens)"),
        model="test-model",
        stop_reason="endTurn",
    )


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28", "auto"])
@pytest.mark.parametrize("tool", ["it_ask_llm", "it_ask_llm_trio"])
async def test_sampling_round_trip_through_the_worker(
    server: RunningSupervisor, tool: str, mode: str
) -> None:
    """Over a session a real request to the client; in the stateless era an input_required round the
    client answers and retries (issue 13)."""
    async with Client(server.url, mode=mode, sampling_callback=answer_sampling) as client:
        result = await client.call_tool(tool, {"prompt": "hi"})
    assert result.is_error is False
    assert result.structured_content == {
        "role": "assistant",
        "content": {"type": "text", "text": "echo of 'hi' (50 tokens)"},
        "model": "test-model",
        "stopReason": "endTurn",
    }


async def test_sampling_without_client_support_is_a_clear_error_for_the_tool(
    server: RunningSupervisor,
) -> None:
    async with Client(server.url, mode="legacy") as client:
        result = await client.call_tool("it_request_refused", {})
    assert text(result) == "refused: the client does not support sampling (sampling/createMessage)"


async def test_stateless_sampling_without_client_support_is_a_clear_error_for_the_tool(
    server: RunningSupervisor,
) -> None:
    async with Client(server.url, mode="2026-07-28") as client:
        result = await client.call_tool("it_request_refused", {})
    assert text(result) == "refused: the client does not support sampling (sampling/createMessage)"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28", "auto"])
@pytest.mark.parametrize("tool", ["it_ask_user", "it_ask_user_asyncio"])
async def test_elicitation_round_trip_with_defaults_and_enums(
    server: RunningSupervisor, tool: str, mode: str
) -> None:
    seen: list[Any] = []

    async def answer(context: Any, params: Any) -> types.ElicitResult:
        seen.append(params.requested_schema)
        return types.ElicitResult(action="accept", content={"name": "Grace", "colour": "red"})

    async with Client(server.url, mode=mode, elicitation_callback=answer) as client:
        result = await client.call_tool(tool, {})
    assert result.structured_content is not None
    assert result.structured_content["action"] == "accept"
    assert result.structured_content["content"]["name"] == "Grace"
    if tool == "it_ask_user":
        properties = seen[0]["properties"]
        assert properties["name"]["default"] == "Ada"
        assert properties["colour"] == {"type": "string", "enum": ["red", "green"], "default": "green"}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_requests_at_once_and_in_turn_ask_the_client_once_each(
    server: RunningSupervisor, mode: str
) -> None:
    """In the stateless era: two requests in one round, a third in the next, and the answers of the first
    round replayed to the re-run function, not asked again."""
    asked: list[str] = []

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append("sample")
        return await answer_sampling(context, params)

    async def elicit(context: Any, params: Any) -> types.ElicitResult:
        asked.append("elicit")
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def roots(context: Any) -> types.ListRootsResult:
        asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///src")])

    async with Client(
        server.url,
        mode=mode,
        sampling_callback=sample,
        elicitation_callback=elicit,
        list_roots_callback=roots,
    ) as client:
        result = await client.call_tool("it_ask_around_trio", {})
        if mode == "2026-07-28":
            first = await client.session.call_tool("it_ask_around_trio", {}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            assert set(first.input_requests or {}) == {"user", "model"}  # one round for the nursery
    assert sorted(asked) == ["elicit", "roots", "sample"]
    assert result.structured_content is not None
    assert result.structured_content["user"]["content"] == {"name": "Ada"}
    assert result.structured_content["model"]["content"]["text"] == "echo of 'Say hi' (5 tokens)"
    assert result.structured_content["roots"] == {"roots": [{"uri": "file:///src"}]}


async def test_elicitation_without_client_support_is_an_error_result(server: RunningSupervisor) -> None:
    async with Client(server.url, mode="legacy") as client:
        result = await client.call_tool("it_ask_user", {})
    assert result.is_error is True
    assert "the client does not support elicitation (elicitation/create)" in text(result)


async def test_tool_to_tool_calls_cross_runtimes(server: RunningSupervisor) -> None:
    async with Client(server.url) as client:
        from_asyncio = await client.call_tool("it_call_trio", {})
        from_trio = await client.call_tool("it_call_asyncio", {})
        missing = await client.call_tool("it_call_missing", {})
    assert from_asyncio.structured_content["structuredContent"]["runtime"] == "trio"
    assert from_trio.structured_content["content"] == [{"type": "text", "text": "from trio"}]
    assert text(missing) == "-32602: unknown tool 'no_such_tool'"


@pytest.mark.parametrize("tool", ["it_wait_for_cancel", "it_wait_for_cancel_trio"])
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_client_cancellation_reaches_the_tool(
    server: RunningSupervisor, tmp_path: Path, tool: str, mode: str
) -> None:
    marker = tmp_path / "cancelled"
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(server.url, mode=mode) as client:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(
                    lambda: client.call_tool(tool, {"marker": str(marker)}, progress_callback=on_progress)
                )
                await started.wait()
                tasks.cancel_scope.cancel()
    server.wait_for(marker.exists, f"{tool} to observe its cancellation", deadline=10)
    assert marker.read_text() == "cancelled"
    server.wait_for(
        lambda: all(w["in_flight"] == 0 for w in server.status()["workers"]), "in-flight to drain"
    )


async def test_http_disconnect_cancels_the_tool(server: RunningSupervisor, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "it_wait_for_cancel_trio",
            "arguments": {"marker": str(marker)},
            "_meta": {
                "progressToken": "p1",
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "it_wait_for_cancel_trio",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("POST", server.url, json=body, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if "notifications/progress" in line:
                    break  # the tool runs: now hang up
    server.wait_for(marker.exists, "the tool to observe the disconnect", deadline=10)


async def test_request_timeout_cancels_the_tool_and_answers(supervisor_factory: Any, tmp_path: Path) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools", "--request-timeout", "0.5")
    marker = tmp_path / "cancelled"
    async with Client(server.url) as client:
        result = await client.call_tool("it_wait_for_cancel_trio", {"marker": str(marker)})
    assert result.is_error is True
    assert text(result) == "tool 'it_wait_for_cancel_trio' timed out after 0.5 s"
    server.wait_for(marker.exists, "the tool to be cancelled at its deadline", deadline=10)


async def test_output_schema_from_the_return_annotation(server: RunningSupervisor) -> None:
    async with Client(server.url) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        good = await client.call_tool("it_point", {"x": 3, "y": 4})
        bad = await client.call_tool("it_bad_output", {})
    schema = tools["it_point"].output_schema
    assert schema is not None and schema["required"] == ["x", "y"]
    assert schema["properties"]["x"]["type"] == "integer"
    assert tools["echo"].output_schema is None
    assert good.structured_content == {"x": 3, "y": 4}
    assert bad.is_error is True
    assert text(bad).startswith("tool 'it_bad_output' returned a value that does not match its output schema")


async def test_list_changed_when_a_restarted_worker_brings_new_tools(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "extra"
    server = supervisor_factory(  # no spare: the module decides its tools at import, and a spare
        # imported it before the marker existed, so only a fresh start brings the new tool
        "--tools", "tests.integration.growing_tools", "--spare-workers", "0",
        env={"IT_EXTRA_TOOL_MARKER": str(marker)},
    )  # fmt: skip
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(server.url, mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.tools is not None and client.server_capabilities.tools.list_changed
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "it_extra" not in names
        marker.write_text("on")
        os.kill(server.worker("trio-0")["pid"], signal.SIGKILL)
        with anyio.fail_after(15):
            await changed.wait()
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "it_extra" in names
        assert text(await client.call_tool("it_extra", {})) == "extra"


def test_origin_of_another_site_is_refused(server: RunningSupervisor) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "Origin": "http://evil.example.com"}
    refused = httpx.post(server.url, json=body, headers=headers, timeout=10)
    assert 400 <= refused.status_code < 500
    headers["Origin"] = f"http://127.0.0.1:{server.port}"
    accepted = httpx.post(server.url, json=body, headers=headers, timeout=10)
    assert accepted.status_code == 200


def test_oversized_body_is_413(supervisor_factory: Any) -> None:
    server = supervisor_factory(
        "--tools", "tests.integration.call_tools", env={"MCP_SUPERVISOR_MAX_BODY_SIZE": "2048"}
    )
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "x" * 4096}},
    }
    response = httpx.post(
        server.url, json=body, headers={"Accept": "application/json, text/event-stream"}, timeout=10
    )
    assert response.status_code == 413


def test_unsupported_protocol_version_is_refused_naming_it(server: RunningSupervisor) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "1999-01-01",
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "1999-01-01",
        "Mcp-Method": "tools/list",
    }
    response = httpx.post(server.url, json=body, headers=headers, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "Unsupported protocol version"
    assert error["data"]["requested"] == "1999-01-01"


async def test_unknown_method_is_method_not_found(server: RunningSupervisor) -> None:
    """Was prompts/list, served since issue 13; the tasks extension is not served."""
    async with Client(server.url, mode="legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
    assert caught.value.code == -32601
