"""The default tools, served when no tool module is configured: small, and enough to see the product work.

``whoami_asyncio`` and ``whoami_trio`` answer with the worker that ran them, so anyone can check that the
two runtimes run in two different processes on two different cores.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import psutil
from pydantic import Field

from ..context import ToolContext
from ..metadata import tool_metadata


@tool_metadata(runtime="asyncio", category="diagnostics", read_only=True, idempotent=True, open_world=False)
async def echo(message: Annotated[str, Field(description="Text to send back")]) -> str:
    """Return the message unchanged."""
    return message


def _whoami(ctx: ToolContext) -> dict[str, Any]:
    process = psutil.Process()
    return {
        "worker": ctx.worker_id,
        "pid": os.getpid(),
        "runtime": ctx.runtime,
        "cpu_affinity": sorted(process.cpu_affinity()) if hasattr(process, "cpu_affinity") else None,
    }


@tool_metadata(runtime="asyncio", category="diagnostics", read_only=True, idempotent=True, open_world=False)
async def whoami_asyncio(ctx: ToolContext) -> dict[str, Any]:
    """Describe the asyncio worker process that ran this call: worker id, pid, runtime, CPU affinity."""
    return _whoami(ctx)


@tool_metadata(runtime="trio", category="diagnostics", read_only=True, idempotent=True, open_world=False)
async def whoami_trio(ctx: ToolContext) -> dict[str, Any]:
    """Describe the Trio worker process that ran this call: worker id, pid, runtime, CPU affinity."""
    return _whoami(ctx)


Seconds = Annotated[float, Field(ge=0, le=3600, description="How long to sleep")]


async def _sleep_reporting(
    seconds: float, ctx: ToolContext, sleep: Callable[[float], Awaitable[object]]
) -> str:
    steps = 10
    for step in range(steps):
        await ctx.report_progress(step, steps, f"slept {seconds * step / steps:.2f} of {seconds:g} s")
        await sleep(seconds / steps)
    await ctx.report_progress(steps, steps, "done")
    return f"slept {seconds:g} s"


@tool_metadata(
    runtime="asyncio", category="diagnostics", timeout_seconds=3600, read_only=True, open_world=False
)
async def sleep(seconds: Seconds, ctx: ToolContext) -> str:
    """Sleep on the asyncio worker, reporting progress about ten times; stops at once when cancelled."""
    import asyncio

    return await _sleep_reporting(seconds, ctx, asyncio.sleep)


@tool_metadata(runtime="trio", category="diagnostics", timeout_seconds=3600, read_only=True, open_world=False)
async def trio_sleep(seconds: Seconds, ctx: ToolContext) -> str:
    """Sleep on the Trio worker, reporting progress about ten times; stops at once when cancelled."""
    import trio

    return await _sleep_reporting(seconds, ctx, trio.sleep)


@tool_metadata(runtime="asyncio", category="diagnostics", read_only=True, open_world=False)
def system_info() -> dict[str, Any]:
    """Figures of the host: CPU count and load, memory, boot time, platform and Python version."""
    memory = psutil.virtual_memory()
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": psutil.cpu_count(),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load_average": list(os.getloadavg()),
        "memory_total_bytes": memory.total,
        "memory_available_bytes": memory.available,
        "boot_time": psutil.boot_time(),
        "uptime_seconds": time.time() - psutil.boot_time(),
    }
