"""Tests of shared/context.py: ToolContext emits PROGRESS and LOG messages, on both runtimes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import trio

from shared.context import INPUT_KEY_META, LOG_LEVELS, ToolContext
from shared.protocol import Log, Message, Progress


def make_context(
    emitted: list[Message], *, progress_token: str | int | None = "token", deadline: float | None = None
) -> ToolContext:
    return ToolContext(
        call_id=7,
        tool="work",
        worker_id="asyncio-0",
        runtime="asyncio",
        deadline=deadline,
        progress_token=progress_token,
        meta={"progressToken": progress_token},
        emit=emitted.append,
    )


def run_on(runtime: str, async_fn: Callable[[], Any]) -> None:
    if runtime == "asyncio":
        asyncio.run(async_fn())
    else:
        trio.run(async_fn)


RUNTIMES = ["asyncio", "trio"]


# -- report_progress -------------------------------------------------------------------------------


def test_report_progress_emits_progress_when_a_token_is_set() -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted)

    ctx.report_progress(1, 4, "one of four")
    ctx.report_progress(2.5)

    assert emitted == [Progress(7, 1.0, 4.0, "one of four"), Progress(7, 2.5, None, None)]
    assert all(isinstance(m.progress, float) for m in emitted if isinstance(m, Progress))


def test_report_progress_emits_nothing_without_a_token() -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted, progress_token=None)

    ctx.report_progress(1, 2)

    assert emitted == []


def test_report_progress_with_token_zero_still_emits() -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted, progress_token=0)

    ctx.report_progress(1)

    assert emitted == [Progress(7, 1.0, None, None)]


@pytest.mark.parametrize(("progress", "total"), [("1", None), (None, None), (1, "10")])
def test_report_progress_refuses_non_numbers(progress: Any, total: Any) -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted)

    with pytest.raises(TypeError, match="must be numbers"):
        ctx.report_progress(progress, total)

    assert emitted == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_report_progress_may_be_awaited_or_not(runtime: str) -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted)

    async def tool() -> None:
        await ctx.report_progress(1, 3)
        ctx.report_progress(2, 3)
        await ctx.report_progress(3, 3, "done")

    run_on(runtime, tool)

    assert emitted == [
        Progress(7, 1.0, 3.0, None),
        Progress(7, 2.0, 3.0, None),
        Progress(7, 3.0, 3.0, "done"),
    ]


# -- log -------------------------------------------------------------------------------------------


def test_log_emits_a_log_message() -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted)

    ctx.log("warning", {"disk": "full"}, logger="storage")
    ctx.log("info", "plain")

    assert emitted == [Log(7, "warning", "storage", {"disk": "full"}), Log(7, "info", None, "plain")]


def test_log_does_not_need_a_progress_token() -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted, progress_token=None)

    ctx.log("debug", "x")

    assert emitted == [Log(7, "debug", None, "x")]


@pytest.mark.parametrize("level", LOG_LEVELS)
def test_every_mcp_log_level_is_accepted(level: str) -> None:
    emitted: list[Message] = []

    make_context(emitted).log(level, "x")

    assert emitted == [Log(7, level, None, "x")]


@pytest.mark.parametrize("level", ["warn", "INFO", "trace", ""])
def test_log_refuses_unknown_level_naming_it(level: str) -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted)

    with pytest.raises(ValueError, match=f"log level {level!r} is not one of"):
        ctx.log(level, "x")

    assert emitted == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_log_may_be_awaited_or_not(runtime: str) -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted)

    async def tool() -> None:
        await ctx.log("info", "awaited")
        ctx.log("info", "not awaited")

    run_on(runtime, tool)

    assert emitted == [Log(7, "info", None, "awaited"), Log(7, "info", None, "not awaited")]


# -- cancellation ----------------------------------------------------------------------------------


def test_cancelled_is_false_until_mark_cancelled() -> None:
    ctx = make_context([])

    assert ctx.cancelled is False
    ctx.mark_cancelled()
    assert ctx.cancelled is True


def test_mark_cancelled_is_idempotent() -> None:
    ctx = make_context([])

    ctx.mark_cancelled()
    ctx.mark_cancelled()

    assert ctx.cancelled is True


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_nothing_is_emitted_after_mark_cancelled(runtime: str) -> None:
    emitted: list[Message] = []
    ctx = make_context(emitted)

    async def tool() -> None:
        await ctx.report_progress(1)
        ctx.mark_cancelled()
        await ctx.report_progress(2)
        ctx.report_progress(3)
        await ctx.log("error", "too late")
        ctx.log("error", "too late")

    run_on(runtime, tool)

    assert emitted == [Progress(7, 1.0, None, None)]


def test_bad_level_is_refused_even_after_cancellation() -> None:
    ctx = make_context([])
    ctx.mark_cancelled()

    with pytest.raises(ValueError):
        ctx.log("loud", "x")


# -- deadline --------------------------------------------------------------------------------------


def test_time_remaining_is_none_without_deadline() -> None:
    assert make_context([], deadline=None).time_remaining() is None


def test_time_remaining_counts_down_to_the_deadline() -> None:
    before = time.monotonic()
    ctx = make_context([], deadline=before + 60)

    remaining = ctx.time_remaining()

    assert remaining is not None
    assert 0 < remaining <= 60
    assert remaining >= 60 - (time.monotonic() - before)


def test_time_remaining_is_never_negative() -> None:
    ctx = make_context([], deadline=time.monotonic() - 5)

    assert ctx.time_remaining() == 0.0


def test_attributes_are_kept() -> None:
    ctx = make_context([], progress_token="tok", deadline=123.0)

    assert (ctx.call_id, ctx.tool, ctx.worker_id, ctx.runtime) == (7, "work", "asyncio-0", "asyncio")
    assert ctx.deadline == 123.0
    assert ctx.progress_token == "tok"
    assert ctx.meta == {"progressToken": "tok"}


# -- requests to the client ------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_requests_to_the_client_carry_their_key_given_or_ordinal(runtime: str) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    async def request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        sent.append((method, params))
        return {"roots": []} if method == "roots/list" else {"action": "decline"}

    context = ToolContext(
        call_id=1, tool="t", worker_id="w", runtime=runtime, deadline=None, progress_token=None,
        meta=None, emit=lambda message: None, request=request,
    )  # fmt: skip

    async def main() -> None:
        assert await context.list_roots() == {"roots": []}
        await context.elicit("Name?", {"type": "object", "properties": {}}, key="name")
        await context.list_roots()

    run_on(runtime, main)
    assert [(method, params["_meta"][INPUT_KEY_META]) for method, params in sent] == [
        ("roots/list", "roots-1"),
        ("elicitation/create", "name"),
        ("roots/list", "roots-3"),
    ]
    assert {k: v for k, v in sent[0][1].items() if k != "_meta"} == {}
