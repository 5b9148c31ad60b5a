"""The tools of the suite's ``tasks-*`` scenarios (the ``io.modelcontextprotocol/tasks`` extension).

Each task-capable tool declares ``task_support``; its tasks are rows of the durable task queue, run on the
asyncio and Trio workers like any call. Names, arguments and answers follow the scenarios' fixtures.
"""

from __future__ import annotations

import asyncio

import trio

from shared import ToolContext, tool_metadata


def _form(prop: str, kind: str = "string") -> dict[str, object]:
    return {"type": "object", "properties": {prop: {"type": kind}}, "required": [prop]}


@tool_metadata(runtime="asyncio")
async def greet(name: str) -> str:
    """Greet someone (a plain tool: never a task)."""
    return f"Hello, {name}!"


@tool_metadata(runtime="trio", task_support="optional", timeout_seconds=120)
async def slow_compute(seconds: float = 1.0, label: str = "") -> str:
    """Work for ``seconds`` seconds, then answer; cancelling the task stops it."""
    await trio.sleep(max(0.0, seconds))
    return f"computed {label or 'result'} after {seconds:g} s"


@tool_metadata(runtime="asyncio", task_support="required")
async def failing_job() -> str:
    """Fail with a tool execution error after about a second."""
    await asyncio.sleep(1.0)
    raise RuntimeError("the job failed, as it always does")


@tool_metadata(runtime="asyncio", task_support="optional")
async def protocol_error_job(ctx: ToolContext) -> str:
    """Ask the client for its roots without handling the refusal: a client that did not declare roots
    makes the whole call fail with the protocol error -32021, so the task ends ``failed``."""
    roots = await ctx.list_roots()
    return f"{len(roots.get('roots', []))} roots"


@tool_metadata(runtime="trio", task_support="optional")
async def confirm_delete(filename: str, ctx: ToolContext) -> str:
    """Ask the user to confirm, then 'delete' the file (nothing is deleted)."""
    answer = await ctx.elicit(f"Delete {filename}?", _form("confirm", "boolean"))
    confirmed = answer.get("action") == "accept" and answer.get("content", {}).get("confirm")
    return f"deleted {filename}" if confirmed else f"kept {filename}"


@tool_metadata(runtime="asyncio", task_support="optional")
async def multi_input(ctx: ToolContext) -> str:
    """Ask two questions at once: both are pending together until both are answered."""
    first, second = await asyncio.gather(
        ctx.elicit("First name?", _form("name"), key="first"),
        ctx.elicit("Second name?", _form("name"), key="second"),
    )
    return f"{first.get('content', {}).get('name')} and {second.get('content', {}).get('name')}"


@tool_metadata(runtime="trio", task_support="required", task_after_input=True)
async def test_tool_with_task(ctx: ToolContext) -> str:
    """Ask the user's name as a plain call, then become a task that greets them."""
    answer = await ctx.elicit("What is your name?", _form("name"), key="user_name")
    await ctx.run_as_task()
    return f"Hello, {answer.get('content', {}).get('name')}!"
