"""The same tools over stdio, as a desktop MCP client starts the server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest
from mcp import Client

from shared.exits import EXIT_STARTUP
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


TOOL_FILE = """
from shared.metadata import tool_metadata


@tool_metadata(runtime="asyncio")
async def from_a_file(message: str) -> str:
    return "file: " + message
"""


async def test_a_tool_file_path_serves_from_another_working_directory_issue_17(tmp_path: Path) -> None:
    """A desktop client starts the server in its own working directory: ``--tools ./file.py`` works."""
    (tmp_path / "it_file_tools.py").write_text(TOOL_FILE)
    params = stdio_server(tools="./it_file_tools.py")
    params.cwd = str(tmp_path)
    async with Client(params, read_timeout_seconds=30) as client:
        answer = await client.call_tool("from_a_file", {"message": "hi"})
        assert answer.content[0].text == "file: hi"


def test_a_tool_module_that_cannot_be_imported_fails_a_stdio_start_issue_17() -> None:
    """Over stdio the client would show no tool and no reason: the start fails, one line on stderr."""
    params = stdio_server(tools="tests.toolmods.broken_import")
    done = subprocess.run(
        [params.command, *params.args], cwd=params.cwd, env=params.env, input="",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == EXIT_STARTUP, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "mcp-supervisor: error: tool module 'tests.toolmods.broken_import' failed to import: "
        "RuntimeError: broken on purpose second line of the message"
    )
