"""Tools the integration tests load into real worker processes (``--tools tests.integration.call_tools``).

The default tools are imported too, so the supervisor under test serves both sets.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import anyio
from pydantic import BaseModel

import shared.builtin_tools  # noqa: F401  (serve the default tools as well)
from shared import ToolContext, tool_metadata


class Point(BaseModel):
    x: int
    y: int


@tool_metadata(runtime="asyncio")
async def it_fail(message: str) -> str:
    """Raise ValueError with the given message."""
    raise ValueError(message)


@tool_metadata(runtime="trio")
async def it_fail_trio(message: str) -> str:
    """Raise ValueError with the given message, on the Trio worker."""
    raise ValueError(message)


@tool_metadata(runtime="asyncio")
def it_sync_thread() -> dict[str, Any]:
    """A sync tool: report the thread it ran in."""
    return {
        "thread": threading.current_thread().name,
        "main": threading.current_thread() is threading.main_thread(),
    }


@tool_metadata(runtime="trio")
def it_sync_thread_trio() -> dict[str, Any]:
    """A sync tool on the Trio worker: report the thread it ran in."""
    return {
        "thread": threading.current_thread().name,
        "main": threading.current_thread() is threading.main_thread(),
    }


@tool_metadata(runtime="asyncio")
async def it_point(x: int, y: int) -> Point:
    """Return a pydantic model (structured content)."""
    return Point(x=x, y=y)


@tool_metadata(runtime="asyncio", timeout_seconds=0.3)
async def it_too_slow() -> str:
    """Sleep past its own 0.3 s deadline."""
    await anyio.sleep(30)
    return "never"


@tool_metadata(runtime="trio", timeout_seconds=0.3)
async def it_too_slow_trio() -> str:
    """Sleep past its own 0.3 s deadline, on the Trio worker."""
    await anyio.sleep(30)
    return "never"


@tool_metadata(runtime="trio", timeout_seconds=0.3)
def it_sync_too_slow_trio(ctx: ToolContext) -> str:
    """A sync tool that outlives its deadline and notices the cancellation through its context."""
    deadline = time.monotonic() + 5
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    return "noticed" if ctx.cancelled else "not told"


@tool_metadata(runtime="asyncio")
async def it_pid() -> int:
    """The worker's pid, as JSON text."""
    return os.getpid()


@tool_metadata(runtime="trio")
async def it_log(ctx: ToolContext) -> str:
    """Send two log messages to the client."""
    await ctx.log("info", "first", logger="it")
    ctx.log("warning", {"second": 2})
    return "logged"
