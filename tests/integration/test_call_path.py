"""The core call path against a real supervisor, real workers and the official MCP client over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import SPARES, RunningSupervisor, spawn_supervisor

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
"""The 2025-11-25 era (initialize handshake, sessions) and the stateless 2026-07-28 era."""


@pytest.fixture(scope="module")
def server() -> Iterator[RunningSupervisor]:
    running = spawn_supervisor("--tools", "tests.integration.call_tools", *SPARES)  # test_health_endpoints
    yield running
    assert running.stop() == 0


def text(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


@pytest.mark.parametrize("mode", MODES)
async def test_lists_every_tool_with_schema_and_annotations(server: RunningSupervisor, mode: str) -> None:
    async with Client(server.url, mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"echo", "sleep", "trio_sleep", "system_info", "whoami_asyncio", "whoami_trio", "it_fail"} <= set(
        tools
    )
    echo = tools["echo"]
    assert echo.description == "Return the message unchanged."
    assert echo.input_schema["required"] == ["message"]
    assert echo.input_schema["properties"]["message"]["type"] == "string"
    assert echo.annotations is not None and echo.annotations.read_only_hint is True
    # the injected context is not part of the schema
    assert "ctx" not in tools["trio_sleep"].input_schema["properties"]


@pytest.mark.parametrize("mode", MODES)
async def test_runtimes_run_in_two_distinct_pinned_processes(server: RunningSupervisor, mode: str) -> None:
    async with Client(server.url, mode=mode) as client:
        asyncio_side = (await client.call_tool("whoami_asyncio", {})).structured_content
        trio_side = (await client.call_tool("whoami_trio", {})).structured_content
    assert asyncio_side["runtime"] == "asyncio" and asyncio_side["worker"] == "asyncio-0"
    assert trio_side["runtime"] == "trio" and trio_side["worker"] == "trio-0"
    assert len({asyncio_side["pid"], trio_side["pid"], server.pid, os.getpid()}) == 4
    if len(os.sched_getaffinity(0)) > 1:
        assert len(asyncio_side["cpu_affinity"]) == 1 and len(trio_side["cpu_affinity"]) == 1
        assert asyncio_side["cpu_affinity"] != trio_side["cpu_affinity"]
    workers = {w["id"]: w for w in server.status()["workers"]}
    assert workers["asyncio-0"]["pid"] == asyncio_side["pid"]
    assert workers["trio-0"]["pid"] == trio_side["pid"]


@pytest.mark.parametrize("mode", MODES)
async def test_echo_returns_text(server: RunningSupervisor, mode: str) -> None:
    async with Client(server.url, mode=mode) as client:
        result = await client.call_tool("echo", {"message": "héllo ✓"})
    assert result.is_error is False
    assert text(result) == "héllo ✓"


@pytest.mark.parametrize("tool", ["sleep", "trio_sleep"])
@pytest.mark.parametrize("mode", MODES)
async def test_progress_arrives_in_order(server: RunningSupervisor, mode: str, tool: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(server.url, mode=mode) as client:
        result = await client.call_tool(tool, {"seconds": 0.1}, progress_callback=on_progress)
    assert text(result) == "slept 0.1 s"
    assert [p for p, _, _ in seen] == [float(i) for i in range(11)]
    assert all(total == 10 for _, total, _ in seen)
    assert seen[-1][2] == "done"


@pytest.mark.parametrize("tool", ["it_fail", "it_fail_trio"])
async def test_tool_exception_is_an_error_result_not_a_traceback(
    server: RunningSupervisor, tool: str
) -> None:
    async with Client(server.url) as client:
        result = await client.call_tool(tool, {"message": "boom"})
    assert result.is_error is True
    assert text(result) == f"tool '{tool}' failed: ValueError: boom"
    assert "Traceback" not in text(result)


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_tool_is_a_protocol_error(server: RunningSupervisor, mode: str) -> None:
    async with Client(server.url, mode=mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("no_such_tool", {})
    assert caught.value.code == -32602
    assert "no_such_tool" in caught.value.message


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "missing required argument 'message'"),
        ({"message": "x", "extra": 1}, "unknown argument 'extra'"),
        ({"message": ["not", "a", "string"]}, "'message': Input should be a valid string"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
async def test_bad_arguments_are_a_tool_error_naming_the_field(
    server: RunningSupervisor, arguments: dict[str, Any], expected: str, mode: str
) -> None:
    """SEP-1303: the model sees what was wrong with its arguments (an isError result, not -32602)."""
    async with Client(server.url, mode=mode) as client:
        result = await client.call_tool("echo", arguments)
    assert result.is_error is True
    assert text(result).startswith("invalid arguments for tool 'echo': ")
    assert expected in text(result)
    assert "\n" not in text(result)


@pytest.mark.parametrize("tool", ["it_sync_thread", "it_sync_thread_trio"])
async def test_sync_tools_run_in_the_worker_thread_pool(server: RunningSupervisor, tool: str) -> None:
    async with Client(server.url) as client:
        result = await client.call_tool(tool, {})
    assert result.structured_content is not None
    assert result.structured_content["main"] is False


async def test_pydantic_model_result_is_structured(server: RunningSupervisor) -> None:
    async with Client(server.url) as client:
        result = await client.call_tool("it_point", {"x": 1, "y": "2"})
    assert result.structured_content == {"x": 1, "y": 2}
    assert text(result) == '{"x":1,"y":2}'


@pytest.mark.parametrize("tool", ["it_too_slow", "it_too_slow_trio"])
async def test_tool_deadline_gives_a_timeout_error(server: RunningSupervisor, tool: str) -> None:
    async with Client(server.url) as client:
        result = await client.call_tool(tool, {})
    assert result.is_error is True
    assert text(result) == f"tool '{tool}' timed out after 0.3 s"


async def test_sync_tool_past_its_deadline_is_told_through_its_context(server: RunningSupervisor) -> None:
    async with Client(server.url) as client:
        result = await client.call_tool("it_sync_too_slow_trio", {})
        # the worker keeps serving afterwards
        assert text(await client.call_tool("whoami_trio", {})) != ""
    assert result.is_error is True and "timed out" in text(result)


async def test_system_info_reports_host_figures(server: RunningSupervisor) -> None:
    async with Client(server.url) as client:
        info = (await client.call_tool("system_info", {})).structured_content
    assert info is not None
    assert info["cpu_count"] >= 1 and info["memory_total_bytes"] > 0


def test_health_endpoints(server: RunningSupervisor) -> None:
    assert server.get("/healthz").json() == {"status": "ok"}
    ready = server.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    server.wait_for(
        lambda: all(server.worker(f"{pool}-spare-0")["state"] == "spare" for pool in ("asyncio", "trio")),
        "the spares to be READY",
        deadline=40,
    )
    status = server.status()
    assert status["supervisor"]["pid"] == server.pid
    assert {w["id"]: w["state"] for w in status["workers"]} == {
        "asyncio-0": "ready",
        "trio-0": "ready",
        "trio-queue": "ready",
        "asyncio-spare-0": "spare",  # no spare for the task queue: it owns the database alone
        "trio-spare-0": "spare",
    }
    assert ready.json()["runtimes"] == {"asyncio": True, "trio": True, "trio-queue": True}
    for worker in status["workers"]:
        assert worker["pid"] and worker["restarts"] == 0 and worker["cpu_affinity"]


@pytest.mark.parametrize("mode", MODES)
async def test_tool_log_messages_reach_the_client(server: RunningSupervisor, mode: str) -> None:
    messages: list[Any] = []

    async def on_log(params: Any) -> None:
        messages.append((params.level, params.data, params.logger))

    async with Client(server.url, mode=mode, logging_callback=on_log, log_level="debug") as client:
        result = await client.call_tool("it_log", {})
    assert text(result) == "logged"
    assert messages == [("info", "first", "it"), ("warning", {"second": 2}, None)]


async def test_logging_set_level_filters_lower_levels(server: RunningSupervisor) -> None:
    messages: list[Any] = []

    async def on_log(params: Any) -> None:
        messages.append(params.level)

    async with Client(server.url, mode="legacy", logging_callback=on_log) as client:
        await client.set_logging_level("warning")
        assert text(await client.call_tool("it_log", {})) == "logged"
    assert messages == ["warning"]
