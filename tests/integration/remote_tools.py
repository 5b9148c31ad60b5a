"""Tools of the remote-node tests (tests/integration/test_remote_nodes.py): each says where it ran (the
network namespace and the worker's pid), so a test can tell a node's worker from the front's own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio

from shared import ToolContext, tool_metadata

HOLD_LIMIT = 60.0
"""A held call returns after this long even without its release file (a test that failed)."""


def _where() -> dict[str, Any]:
    return {"netns": os.readlink("/proc/self/ns/net"), "pid": os.getpid()}


async def _hold(release: str, ctx: ToolContext) -> dict[str, Any]:
    await ctx.report_progress(0, 1, repr(_where()))
    with anyio.move_on_after(HOLD_LIMIT):
        while not Path(release).exists():
            await anyio.sleep(0.02)
    return _where()


@tool_metadata(runtime="trio", read_only=True)
async def remote_where() -> dict[str, Any]:
    """Where this call ran: the network namespace and the worker's pid."""
    return _where()


@tool_metadata(runtime="trio", idempotent=True)
async def remote_hold_idempotent(release: str, ctx: ToolContext) -> dict[str, Any]:
    """Report where it runs (as progress), then hold until the file ``release`` exists; safe to repeat."""
    return await _hold(release, ctx)


@tool_metadata(runtime="trio")
async def remote_hold(release: str, ctx: ToolContext) -> dict[str, Any]:
    """Report where it runs (as progress), then hold until the file ``release`` exists; not safe to
    run twice."""
    return await _hold(release, ctx)
