"""Tests of trio_worker/stepping.py: a coroutine awaited through ``run_stepped`` behaves as if awaited
directly, runs every step in the context it is given, and reports its first suspension once.

Nothing sleeps to synchronise: suspensions wait on events the test sets itself, after
``wait_all_tasks_blocked``.
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Generator
from typing import Any

import pytest
import trio
import trio.testing

from trio_worker.stepping import run_stepped

variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="outer")


class Suspensions:
    """An ``on_suspend`` that counts its calls and records them in a shared event log."""

    def __init__(self, log: list[str]) -> None:
        self.count = 0
        self._log = log

    def __call__(self) -> None:
        self.count += 1
        self._log.append("suspended")


def test_a_coroutine_that_does_not_suspend_returns_without_a_suspension() -> None:
    log: list[str] = []
    suspensions = Suspensions(log)

    async def body() -> str:
        log.append("ran")
        return "ok"

    async def main() -> str:
        return await run_stepped(body(), contextvars.copy_context(), suspensions)

    assert trio.run(main) == "ok"
    assert (log, suspensions.count) == (["ran"], 0)


def test_the_first_suspension_is_reported_once_before_trio_runs_anything_else() -> None:
    log: list[str] = []
    suspensions = Suspensions(log)

    async def body() -> str:
        log.append("first step")
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        log.append("last step")
        return "ok"

    async def other() -> None:
        log.append("other task")

    async def main() -> str:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)  # runs on the loop's next turn, after the first suspension
            return await run_stepped(body(), contextvars.copy_context(), suspensions)

    assert trio.run(main) == "ok"
    assert log[:2] == ["first step", "suspended"]
    assert log.count("suspended") == 1
    assert log[-1] == "last step" and "other task" in log


def test_every_step_runs_in_the_given_context_and_the_awaiting_task_keeps_its_own() -> None:
    seen: list[str] = []

    async def body() -> None:
        seen.append(variable.get())
        variable.set("inner")
        await trio.lowlevel.checkpoint()
        seen.append(variable.get())  # still the call's context after a suspension

    async def main() -> None:
        variable.set("task")
        context = contextvars.copy_context()
        variable.set("changed after the copy")
        await run_stepped(body(), context, lambda: None)
        seen.append(variable.get())
        seen.append(context[variable])

    trio.run(main)
    assert seen == ["task", "inner", "changed after the copy", "inner"]


def test_on_suspend_runs_in_the_awaiting_tasks_context() -> None:
    seen: list[str] = []

    async def body() -> None:
        variable.set("inner")
        await trio.lowlevel.checkpoint()

    async def main() -> None:
        await run_stepped(body(), contextvars.copy_context(), lambda: seen.append(variable.get()))

    trio.run(main)
    assert seen == ["outer"]


@pytest.mark.parametrize("suspend_first", [False, True])
def test_an_exception_propagates_as_from_a_plain_await(suspend_first: bool) -> None:
    async def body() -> None:
        if suspend_first:
            await trio.lowlevel.checkpoint()
        raise ValueError("from the tool")

    async def main() -> None:
        with pytest.raises(ValueError, match="from the tool"):
            await run_stepped(body(), contextvars.copy_context(), lambda: None)

    trio.run(main)


def test_cancelling_the_awaiting_tasks_scope_cancels_the_coroutine_at_its_await() -> None:
    log: list[str] = []

    async def body() -> None:
        try:
            await trio.Event().wait()
        except trio.Cancelled:
            log.append("cancelled at its await")
            raise

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def awaiting() -> None:
                with scope:
                    await run_stepped(body(), contextvars.copy_context(), lambda: None)
                log.append(f"caught by its scope: {scope.cancelled_caught}")

            nursery.start_soon(awaiting)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()

    trio.run(main)
    assert log == ["cancelled at its await", "caught by its scope: True"]


def test_a_deadline_of_the_awaiting_tasks_scope_is_the_coroutines_too() -> None:
    seen: list[float] = []

    async def body() -> None:
        seen.append(trio.current_effective_deadline())
        await trio.sleep_forever()

    async def main() -> None:
        deadline = trio.current_time() + 0.05
        with trio.CancelScope(deadline=deadline) as scope:
            await run_stepped(body(), contextvars.copy_context(), lambda: None)
        assert scope.cancelled_caught
        seen.append(deadline)

    trio.run(main)
    assert seen[0] == seen[1]


def test_an_exception_from_on_suspend_closes_the_coroutine_and_propagates() -> None:
    log: list[str] = []

    async def body() -> None:
        try:
            await trio.lowlevel.checkpoint()
        finally:
            log.append("closed")

    def refuse() -> None:
        raise RuntimeError("no reader")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="no reader"):
            await run_stepped(body(), contextvars.copy_context(), refuse)

    trio.run(main)
    assert log == ["closed"]


@types.coroutine
def foreign_yield() -> Generator[Any, Any, None]:
    yield "not a trio trap"


def test_what_trio_throws_in_reaches_the_coroutine_at_its_yield() -> None:
    async def body() -> str:
        await trio.lowlevel.checkpoint()
        try:
            await foreign_yield()
        except TypeError as exc:
            return f"refused: {'unrecognized yield message' in str(exc)}"
        return "not refused"

    async def main() -> str:
        return await run_stepped(body(), contextvars.copy_context(), lambda: None)

    assert trio.run(main) == "refused: True"
