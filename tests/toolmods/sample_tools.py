"""Small tools of both runtimes for the ToolHost tests; every name starts with ``ut_``."""

from __future__ import annotations

import asyncio
from typing import Any

import trio

from shared.context import ToolContext
from shared.metadata import tool_metadata


@tool_metadata(runtime="asyncio", read_only=True, title="Echo")
async def ut_echo(message: str, ctx: ToolContext) -> str:
    """Answer with the worker id and the message; reports progress once."""
    await ctx.report_progress(1, 1)
    return f"{ctx.worker_id}: {message}"


@tool_metadata(runtime="trio", timeout_seconds=5)
async def ut_trio_double(n: int) -> int:
    """Double ``n`` on the Trio worker."""
    await trio.lowlevel.checkpoint()
    return 2 * n


@tool_metadata(runtime="trio")
async def ut_trio_wait(ctx: ToolContext) -> None:
    """Log, then wait until cancelled."""
    ctx.log("info", "started")
    await trio.sleep_forever()


@tool_metadata(runtime="asyncio")
async def ut_asyncio_wait(ctx: ToolContext) -> None:
    """Log, then wait until cancelled."""
    ctx.log("info", "started")
    await asyncio.Event().wait()


@tool_metadata(runtime="asyncio", timeout_seconds=None)
def ut_sync_add(a: int, b: int = 1) -> int:
    """A sync tool: runs in the worker's thread pool."""
    return a + b


@tool_metadata(runtime="asyncio")
async def ut_fail(reason: str) -> None:
    """Raise ``ValueError(reason)``."""
    raise ValueError(reason)


@tool_metadata(runtime="asyncio")
async def ut_big(size: int) -> str:
    """Return ``size`` characters."""
    return "x" * size


@tool_metadata(runtime="asyncio")
async def ut_opaque() -> dict[str, Any]:
    """Return something JSON cannot represent, inside a dict."""
    return {"thing": object()}
