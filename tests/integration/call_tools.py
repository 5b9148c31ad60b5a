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

import shared.worker.builtin_tools  # noqa: F401  (serve the default tools as well)
from shared import ToolContext, tool_metadata
from shared.principal import PRINCIPAL_META


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


@tool_metadata(runtime="asyncio")
async def it_ask_llm(prompt: str, ctx: ToolContext) -> dict[str, Any]:
    """Ask the client's LLM (sampling) and return its whole answer."""
    return await ctx.sample(prompt, max_tokens=50, system_prompt="Be brief.")


@tool_metadata(runtime="trio")
async def it_ask_llm_trio(prompt: str, ctx: ToolContext) -> dict[str, Any]:
    """Ask the client's LLM (sampling) from the Trio worker."""
    return await ctx.sample(prompt, max_tokens=50)


@tool_metadata(runtime="trio")
async def it_ask_user(ctx: ToolContext) -> dict[str, Any]:
    """Ask the user for a form with a default and an enum (elicitation)."""
    return await ctx.elicit(
        "Who are you?",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "Ada"},
                "colour": {"type": "string", "enum": ["red", "green"], "default": "green"},
            },
            "required": ["name"],
        },
    )


@tool_metadata(runtime="asyncio")
async def it_ask_user_asyncio(ctx: ToolContext) -> dict[str, Any]:
    """Ask the user for a name (elicitation) from the asyncio worker."""
    return await ctx.elicit("Name?", {"type": "object", "properties": {"name": {"type": "string"}}})


@tool_metadata(runtime="trio")
async def it_ask_around_trio(ctx: ToolContext) -> dict[str, Any]:
    """Ask the user and the model at once (a nursery: one round), then the client's roots (another)."""
    answers: dict[str, Any] = {}

    async def ask_user() -> None:
        answers["user"] = await ctx.elicit(
            "Name?", {"type": "object", "properties": {"name": {"type": "string"}}}, key="user"
        )

    async def ask_model() -> None:
        answers["model"] = await ctx.sample("Say hi", max_tokens=5, key="model")

    async with anyio.create_task_group() as nursery:  # a Trio nursery underneath
        nursery.start_soon(ask_user)
        nursery.start_soon(ask_model)
    answers["roots"] = await ctx.list_roots()
    return answers


@tool_metadata(runtime="asyncio")
async def it_request_refused(ctx: ToolContext) -> str:
    """Try to sample and report the error the tool gets."""
    from shared import ClientRequestError

    try:
        await ctx.sample("hello", max_tokens=5)
    except ClientRequestError as exc:
        return f"refused: {exc}"
    return "not refused"


@tool_metadata(runtime="asyncio")
async def it_call_trio(ctx: ToolContext) -> dict[str, Any]:
    """Call a Trio tool from the asyncio worker and return its result."""
    return await ctx.call_tool("whoami_trio")


@tool_metadata(runtime="trio")
async def it_call_asyncio(ctx: ToolContext) -> dict[str, Any]:
    """Call an asyncio tool from the Trio worker, with arguments, and return its result."""
    return await ctx.call_tool("echo", {"message": "from trio"})


@tool_metadata(runtime="trio")
async def it_call_missing(ctx: ToolContext) -> str:
    """Call a tool that does not exist and report the error."""
    from shared import ClientRequestError

    try:
        await ctx.call_tool("no_such_tool")
    except ClientRequestError as exc:
        return f"{exc.code}: {exc}"
    return "no error"


async def _wait_for_cancel(marker: str, ctx: ToolContext) -> str:
    await ctx.report_progress(0, 1, "waiting")
    try:
        await anyio.sleep(60)
    except anyio.get_cancelled_exc_class():
        with open(marker, "w") as file:
            file.write("cancelled")
        raise
    return "not cancelled"


@tool_metadata(runtime="asyncio", timeout_seconds=60)
async def it_wait_for_cancel(marker: str, ctx: ToolContext) -> str:
    """Sleep up to a minute; when cancelled, write 'cancelled' to the marker file."""
    return await _wait_for_cancel(marker, ctx)


@tool_metadata(runtime="trio", timeout_seconds=60)
async def it_wait_for_cancel_trio(marker: str, ctx: ToolContext) -> str:
    """Sleep up to a minute on Trio; when cancelled, write 'cancelled' to the marker file."""
    return await _wait_for_cancel(marker, ctx)


@tool_metadata(runtime="asyncio")
async def it_bad_output() -> Point:
    """Claim to return a Point, return something else."""
    return {"x": "not a number"}  # type: ignore[return-value]


@tool_metadata(runtime="trio")
def it_abort() -> str:
    """Abort the worker process, like a crashing C extension."""
    os.abort()


@tool_metadata(runtime="asyncio")
def it_block_loop(seconds: float) -> str:
    """Block the asyncio worker's event loop (a sync call inside an async tool would do the same)."""
    time.sleep(seconds)
    return "unblocked"


@tool_metadata(runtime="asyncio")
async def it_block_loop_async(seconds: float) -> str:
    """Block the asyncio worker's event loop from an async tool: no heartbeat can be sent meanwhile."""
    time.sleep(seconds)
    return "unblocked"


async def _hold(seconds: float, ctx: ToolContext) -> str:
    await ctx.report_progress(0, 1, "holding")
    await anyio.sleep(seconds)
    return f"held {seconds:g} s"


@tool_metadata(runtime="asyncio", timeout_seconds=120)
async def it_hold(seconds: float, ctx: ToolContext) -> str:
    """Hold the call (not read-only, not idempotent: never retried)."""
    return await _hold(seconds, ctx)


@tool_metadata(runtime="trio", timeout_seconds=120)
async def it_hold_trio(seconds: float, ctx: ToolContext) -> str:
    """Hold the call on the Trio worker (never retried)."""
    return await _hold(seconds, ctx)


async def _notify(ctx: ToolContext) -> str:
    await ctx.report_progress(0, 3, "starting")
    await ctx.log("debug", "détail", logger="it")
    await ctx.log("info", {"step": 1, "none": None, "text": "naïve ✓"})
    await ctx.report_progress(1.5)
    await ctx.log("warning", None, logger="it")
    await ctx.log("error", [1, 2.5, True])
    await ctx.report_progress(3, 3)
    return "notified"


@tool_metadata(runtime="asyncio")
async def it_notify(ctx: ToolContext) -> str:
    """Report progress three times and log at four levels, interleaved (issue 15)."""
    return await _notify(ctx)


@tool_metadata(runtime="trio")
async def it_notify_trio(ctx: ToolContext) -> str:
    """``it_notify`` on the Trio worker."""
    return await _notify(ctx)


@tool_metadata(runtime="asyncio", timeout_seconds=0.3)
async def it_notify_then_too_slow(ctx: ToolContext) -> str:
    """Report progress and log, then sleep past its own 0.3 s deadline: the error ends an event stream."""
    await ctx.report_progress(0, 1, "starting")
    await ctx.log("info", "about to sleep")
    await anyio.sleep(30)
    return "never"


_ballast: list[bytearray] = []


@tool_metadata(runtime="asyncio")
def it_grow(megabytes: int) -> int:
    """Keep ``megabytes`` MiB of touched memory alive in the worker (to test max_worker_rss)."""
    block = bytearray(megabytes * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    _ballast.append(block)
    return len(_ballast)


@tool_metadata(runtime="trio")
async def it_add(a: int, b: int) -> dict[str, int]:
    """Add two integers (structured output, for workflows)."""
    return {"sum": a + b}


_counted = 0


@tool_metadata(runtime="asyncio")
async def it_count() -> int:
    """How many times this worker process has run this tool, this call included (a process's own state)."""
    global _counted
    _counted += 1
    return _counted


@tool_metadata(runtime="asyncio")
def it_env(name: str) -> str:
    """The value of an environment variable in this worker ("" when unset)."""
    return os.environ.get(name, "")


@tool_metadata(runtime="asyncio")
async def it_meta(ctx: ToolContext) -> dict[str, Any]:
    """The ``_meta`` of the request as the tool sees it (``ctx.meta``), the verified principal left out."""
    return {key: value for key, value in (ctx.meta or {}).items() if key != PRINCIPAL_META}
