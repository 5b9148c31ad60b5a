"""The protocol capabilities over stdio, the transport desktop MCP clients use."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from tests.conftest import stdio_server

pytestmark = pytest.mark.anyio


async def answer_sampling(
    context: Any, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="sampled"),
        model="m",
        stop_reason="endTurn",
    )


async def answer_elicitation(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Grace"})


@pytest.fixture(params=["legacy", "2026-07-28", "auto"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Client, list[Any]]]:
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append((params.level, params.data))

    params = stdio_server()
    async with Client(
        params,
        read_timeout_seconds=30,
        sampling_callback=answer_sampling,
        elicitation_callback=answer_elicitation,
        logging_callback=on_log,
        log_level="debug",
        mode=request.param,
    ) as connected:
        yield connected, logs


def text(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


async def test_every_capability_over_stdio(client: tuple[Client, list[Any]], tmp_path: Path) -> None:
    session, logs = client
    # a request in the middle of the call (legacy), or an input_required round and a retry (2026-07-28)
    for sampler in ("it_ask_llm", "it_ask_llm_trio"):
        sampled = await session.call_tool(sampler, {"prompt": "hi"})
        assert sampled.structured_content["content"]["text"] == "sampled"
    for asker in ("it_ask_user", "it_ask_user_asyncio"):
        elicited = await session.call_tool(asker, {})
        assert elicited.structured_content["content"] == {"name": "Grace"}
    assert text(await session.call_tool("it_log", {})) == "logged"
    assert ("info", "first") in logs and ("warning", {"second": 2}) in logs
    crossed = await session.call_tool("it_call_trio", {})
    assert crossed.structured_content["structuredContent"]["runtime"] == "trio"

    progress: list[float] = []
    started = anyio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)
        started.set()

    marker = tmp_path / "cancelled"
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(
                lambda: session.call_tool(
                    "it_wait_for_cancel", {"marker": str(marker)}, progress_callback=on_progress
                )
            )
            await started.wait()
            tasks.cancel_scope.cancel()
        while not marker.exists():
            await anyio.sleep(0.05)
    assert progress == [0.0]
    assert marker.read_text() == "cancelled"


async def test_list_changed_over_stdio(tmp_path: Path) -> None:
    import signal

    marker = tmp_path / "extra"
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    params = stdio_server(  # no spare: a spare imports the tools before the marker exists (see test_kinds)
        "tests.integration.growing_tools",
        env={**os.environ, "IT_EXTRA_TOOL_MARKER": str(marker), "MCP_SUPERVISOR_SPARE_WORKERS": "0"},
    )
    async with Client(params, mode="legacy", read_timeout_seconds=30, message_handler=on_message) as session:
        assert "it_extra" not in {tool.name for tool in (await session.list_tools()).tools}
        trio_pid = (await session.call_tool("whoami_trio", {})).structured_content["pid"]
        marker.write_text("on")
        os.kill(trio_pid, signal.SIGKILL)
        with anyio.fail_after(15):
            await changed.wait()
        assert "it_extra" in {tool.name for tool in (await session.list_tools()).tools}
