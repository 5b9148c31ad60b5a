"""Fixtures of the task-queue tests: the Trio backend, a fake executor, a database on each store and
helpers to run an engine, read its database directly and wait for a condition (bounded by a deadline; a
condition that never holds fails).

``database`` is parametrized over the two stores: a SQLite file in the test's temporary directory, and a
fresh database on the session's real PostgreSQL server (``tests/pgserver.py``). Every test that takes it
runs on both; the ones about one store's own machinery (SQLite's lock file, WAL and file modes) use
``tmp_path`` directly.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from trio_worker.taskqueue import Engine

from .fakes import FakeExecutor, standard_executor

T = TypeVar("T")
DEADLINE = 5.0
STORES = ("sqlite", "postgresql")
Target = str | Path
"""Where a task database is: a SQLite path or a PostgreSQL URL."""


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture
def fake() -> FakeExecutor:
    return standard_executor()


@pytest.fixture(params=STORES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A task database of the store the test runs on: a path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "state" / "queue.db"
    return str(request.getfixturevalue("postgres").database())


def expire_leases(database: Target) -> None:
    """After an engine was dropped (a crash), what waiting ``task_lease_seconds`` does on a shared
    database: the leases of its running tasks run out, so the next engine takes them over at once
    (nothing to do on SQLite, whose next engine recovers at once)."""
    if isinstance(database, str):
        execute(database, "UPDATE tasks SET lease_expires = 0 WHERE status = 'running'")


def execute(database: str, sql: str, *params: Any) -> None:
    """Run one statement on a PostgreSQL database, on a connection of its own."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql.replace("?", "%s"), params)


def select(database: Target, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows read from the database directly, on a connection of its own (what is committed, not the
    engine's memory); ``sql`` with ``?`` placeholders."""
    if isinstance(database, Path):
        with closing(sqlite3.connect(database)) as conn:
            return [tuple(row) for row in conn.execute(sql, params)]
    import psycopg

    with psycopg.connect(database) as conn:
        return [tuple(row) for row in conn.execute(sql.replace("?", "%s"), params)]


@asynccontextmanager
async def serving(path: Target, executor: Any, **kwargs: Any) -> AsyncIterator[Engine]:
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
