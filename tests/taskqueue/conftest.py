"""Fixtures of the task-queue tests: the Trio backend, a fake executor, a database path and helpers to
run an engine and wait for a condition (bounded by a deadline; a condition that never holds fails)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from trio_worker.taskqueue import Engine

from .fakes import FakeExecutor, standard_executor

T = TypeVar("T")
DEADLINE = 5.0


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture
def fake() -> FakeExecutor:
    return standard_executor()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "queue.db"


@asynccontextmanager
async def serving(path: Path, executor: Any, **kwargs: Any) -> AsyncIterator[Engine]:
    """An engine serving on ``path`` for the body; cancelled (like a crash: nothing more is written) after."""
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            engine = Engine(path, executor, **kwargs)
            await nursery.start(engine.serve)
            yield engine
            nursery.cancel_scope.cancel()


async def eventually(predicate: Callable[[], Awaitable[T] | T], what: str, deadline: float = DEADLINE) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``deadline`` s."""
    with trio.move_on_after(deadline):
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            await trio.sleep(0.002)
    pytest.fail(f"timed out after {deadline} s waiting for {what}")


async def wait_status(engine: Engine, task_id: str, *statuses: str) -> dict[str, Any]:
    """Wait until the task is in one of ``statuses``; return its task_status."""

    async def check() -> dict[str, Any] | None:
        status = await engine.task_status(task_id)
        return status if status["status"] in statuses else None

    return await eventually(check, f"task {task_id} to become {' or '.join(statuses)}")


async def wait_workflow(engine: Engine, workflow_id: str, *statuses: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status = await engine.workflow_status(workflow_id)
        return status if status["status"] in statuses else None

    return await eventually(check, f"workflow {workflow_id} to become {' or '.join(statuses)}")
