"""Task-capable tools for the MCP tasks tests (tests/integration/test_mcp_tasks.py).

Each run of ``tk_again`` and ``tk_once`` appends its number to a log file, so a test can count how many
times each task really ran.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import trio

from shared import ToolContext, tool_metadata

_FORM = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def _note(log: str, n: int) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(f"{n}\n")


@tool_metadata(runtime="asyncio", task_support="required", idempotent=True, timeout_seconds=60)
async def tk_again(n: int, log: str, seconds: float = 0.2) -> int:
    """An idempotent task: safe to run again after a crash."""
    _note(log, n)
    await asyncio.sleep(seconds)
    return n


@tool_metadata(runtime="trio", task_support="required", timeout_seconds=60)
async def tk_once(n: int, log: str, seconds: float = 0.2) -> int:
    """A task that must never run twice (neither idempotent nor read-only)."""
    _note(log, n)
    await trio.sleep(seconds)
    return n


@tool_metadata(runtime="trio", task_support="optional", timeout_seconds=120)
async def tk_wait_for_cancel(marker: str, ctx: ToolContext) -> str:
    """Report progress, then wait to be cancelled; the cancellation leaves ``marker`` behind."""
    await ctx.report_progress(1, 4, "copying the first quarter")
    try:
        await trio.sleep(100)
    except trio.Cancelled:
        Path(marker).write_text("cancelled", encoding="utf-8")
        raise
    return "not cancelled"


@tool_metadata(runtime="asyncio", task_support="optional")
async def tk_confirm(what: str, ctx: ToolContext) -> str:
    """Ask the user to confirm ``what`` and say what they answered."""
    answer = await ctx.elicit(f"Go ahead with {what}?", _FORM, key="confirm")
    return f"{what}: {'yes' if answer.get('content', {}).get('ok') else 'no'}"


@tool_metadata(runtime="asyncio", task_support="optional")
async def tk_quick(text: str) -> str:
    """Answer at once."""
    return text.upper()
