"""Tests of asyncio_worker/eager.py: a task whose first step runs at once, and is otherwise an ordinary task.

Each test starts the task from a loop callback (``loop.call_soon``), as the worker's socket reader does, and
runs on the default loop and on uvloop. Nothing sleeps to synchronise: suspensions wait on futures the test
completes itself.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from asyncio_worker.eager import start_eager_task

T = TypeVar("T")

variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="outer")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    def runner(main: Coroutine[Any, Any, T]) -> T:
        if request.param == "uvloop":
            return uvloop.run(main)
        return asyncio.run(main)

    return runner


async def from_callback(
    coro: Coroutine[Any, Any, T], then: Callable[[asyncio.Task[T]], object] = lambda task: None
) -> tuple[asyncio.Task[T], bool]:
    """``start_eager_task`` called from a loop callback, as the worker's reader callback calls it; ``then``
    runs in the same callback, before the task's own first turn."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[tuple[asyncio.Task[T], bool]] = loop.create_future()

    def callback() -> None:
        task, finished = start_eager_task(loop, coro)
        then(task)
        started.set_result((task, finished))

    loop.call_soon(callback)
    return await started


def test_a_coroutine_that_does_not_suspend_finishes_before_the_call_returns(run: Any) -> None:
    events: list[str] = []

    async def body() -> str:
        events.append("ran")
        return "ok"

    async def main() -> None:
        task, finished = await from_callback(body())
        assert finished
        assert events == ["ran"]
        assert await task == "ok"

    run(main())


def test_the_first_step_runs_as_the_task_itself(run: Any) -> None:
    seen: list[asyncio.Task[Any] | None] = []

    async def body() -> None:
        seen.append(asyncio.current_task())
        async with asyncio.timeout(60):  # needs a current task
            pass

    async def main() -> None:
        task, finished = await from_callback(body())
        assert finished
        assert seen == [task]
        await task

    run(main())


def test_a_suspended_coroutine_continues_in_its_task(run: Any) -> None:
    async def main() -> None:
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        seen: list[asyncio.Task[Any] | None] = []

        async def body() -> str:
            seen.append(asyncio.current_task())
            value = await gate
            seen.append(asyncio.current_task())
            async with asyncio.timeout(60):
                await asyncio.sleep(0)
            return value + "!"

        task, finished = await from_callback(body())
        assert not finished
        assert not task.done()
        gate.set_result("ok")
        assert await task == "ok!"
        assert seen == [task, task]

    run(main())


def test_an_exception_of_the_first_step_is_the_tasks(run: Any) -> None:
    async def body() -> None:
        raise ValueError("boom")

    async def main() -> None:
        task, finished = await from_callback(body())
        assert finished
        with pytest.raises(ValueError, match="boom"):
            await task

    run(main())


def test_cancelled_before_its_next_step_the_coroutine_sees_the_cancellation_at_its_await(run: Any) -> None:
    async def main() -> None:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        events: list[str] = []

        async def body() -> None:
            try:
                await gate
            except asyncio.CancelledError:
                events.append("cancelled")
                raise

        task, finished = await from_callback(body(), lambda task: task.cancel())  # before its own turn
        assert not finished
        with pytest.raises(asyncio.CancelledError):
            await task
        assert events == ["cancelled"]
        assert gate.cancelled()  # as the task would have cancelled the future it waited on

    run(main())


def test_cancelled_at_a_later_await(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[None] = loop.create_future()
        reached: asyncio.Future[None] = loop.create_future()
        events: list[str] = []

        async def body() -> None:
            await first
            reached.set_result(None)
            try:
                await loop.create_future()
            except asyncio.CancelledError:
                events.append("cancelled")
                raise

        task, _ = await from_callback(body())
        first.set_result(None)
        await reached
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert events == ["cancelled"]

    run(main())


def test_a_finished_task_cancelled_before_its_turn_is_cancelled(run: Any) -> None:
    async def body() -> str:
        return "ok"

    async def main() -> None:
        task, finished = await from_callback(body(), lambda task: task.cancel())
        assert finished
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_context_variables_set_by_the_coroutine_stay_in_its_task(run: Any) -> None:
    async def main() -> None:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def body() -> str:
            variable.set("inner")
            await gate
            return variable.get()

        task, _ = await from_callback(body())
        assert variable.get() == "outer"
        gate.set_result(None)
        assert await task == "inner"
        assert variable.get() == "outer"

    run(main())


def test_started_from_inside_a_task_it_starts_the_ordinary_way(run: Any) -> None:
    events: list[str] = []

    async def body() -> str:
        events.append("ran")
        return "ok"

    async def main() -> None:
        task, finished = start_eager_task(asyncio.get_running_loop(), body())
        assert not finished
        assert events == []
        assert await task == "ok"
        assert events == ["ran"]

    run(main())
