"""Tools for the quarantine tests (``--tools tests.integration.segfault_tools``): one that really segfaults its
asyncio worker, and well-behaved tools of the same runtime. The default tools are served too."""

from __future__ import annotations

import ctypes

import anyio

import shared.worker.builtin_tools  # noqa: F401  (serve the default tools as well)
from shared import ToolContext, tool_metadata


@tool_metadata(runtime="asyncio", task_support="optional")
async def it_segfault() -> str:
    """Read the memory at address 0: the worker process dies of SIGSEGV, as with a broken C extension."""
    ctypes.string_at(0)
    return "unreachable"


@tool_metadata(runtime="asyncio")
async def it_linger(seconds: float, ctx: ToolContext) -> str:
    """Report progress once (so a test knows it runs), then wait ``seconds``."""
    await ctx.report_progress(0, 1, "lingering")
    await anyio.sleep(seconds)
    return f"lingered {seconds:g} s"
