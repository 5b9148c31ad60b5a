"""Tools for the tests of supervisors behind HAProxy (tests/integration/test_haproxy.py).

Each answer names the supervisor that served it (the worker's parent), so a test can tell which front a
request reached; ``lb_call`` also notes its arrival in a file before it does anything else.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from shared import ToolContext, tool_metadata


@tool_metadata(runtime="asyncio")
async def lb_whoami() -> dict[str, Any]:
    """The supervisor (the worker's parent) and the worker that ran this call."""
    return {"supervisor": os.getppid(), "worker": os.getpid()}


@tool_metadata(runtime="asyncio", timeout_seconds=60)
async def lb_call(n: int, arrivals: str, seconds: float = 0.0, hold: str = "") -> dict[str, Any]:
    """A call that is neither idempotent nor read-only: note ``n`` and the supervisor in ``arrivals``
    (one line, appended), then sleep ``seconds``; with ``hold``, then wait (up to 30 s) for that file."""
    with open(arrivals, "a", encoding="utf-8") as file:
        file.write(f"{n} {os.getppid()}\n")
    await asyncio.sleep(seconds)
    for _ in range(3000 if hold else 0):
        if Path(hold).exists():
            break
        await asyncio.sleep(0.01)
    return {"n": n, "supervisor": os.getppid()}


@tool_metadata(runtime="asyncio", timeout_seconds=60)
async def lb_wait_for(path: str, ctx: ToolContext) -> str:
    """Report progress, then wait (up to 30 s) for ``path`` to exist: a client that creates it when the
    progress arrives proves the notification reached it while the call was still running."""
    await ctx.report_progress(1, 2, "waiting")
    for _ in range(3000):
        if Path(path).exists():
            return "released"
        await asyncio.sleep(0.01)
    return "never released"
