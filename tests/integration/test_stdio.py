"""The same tools over stdio, as a desktop MCP client starts the server."""

from __future__ import annotations

import psutil
import pytest
from mcp import Client

from tests.conftest import assert_gone, stdio_server

pytestmark = pytest.mark.anyio


async def test_stdio_serves_both_runtimes_and_exits_with_its_client() -> None:
    params = stdio_server()
    async with Client(params, read_timeout_seconds=30) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "whoami_asyncio", "whoami_trio"} <= names
        echo = await client.call_tool("echo", {"message": "over stdio"})
        assert echo.content[0].text == "over stdio"
        asyncio_side = (await client.call_tool("whoami_asyncio", {})).structured_content
        trio_side = (await client.call_tool("whoami_trio", {})).structured_content
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        await client.call_tool("trio_sleep", {"seconds": 0.05}, progress_callback=on_progress)
        assert progress == [float(i) for i in range(11)]
        supervisor_pid = psutil.Process(asyncio_side["pid"]).ppid()
        assert psutil.Process(trio_side["pid"]).ppid() == supervisor_pid
        assert asyncio_side["pid"] != trio_side["pid"]
    # closing stdin ends the supervisor, which stops its workers
    assert_gone([supervisor_pid, asyncio_side["pid"], trio_side["pid"]], deadline=15)
