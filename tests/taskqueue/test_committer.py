"""Group commit: transitions handed in while a transaction is being synced share the next one; a
transition that fails, at recording or at writing, fails alone; and what a submission acknowledged is in
the database, as seen from a fresh connection, when it returns.

The database thread is held busy by a read that waits on a ``threading.Event``, so that the submissions
pile up deterministically behind it (``wait_all_tasks_blocked``), not by timing."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_worker.taskqueue import Engine
from trio_worker.taskqueue.errors import ConflictError

from .conftest import Target, select, serving, wait_status
from .fakes import FakeExecutor

pytestmark = pytest.mark.anyio


def rows(database: Target) -> dict[str, str]:
    """Task id -> status, read from a fresh connection (what is on disk, not the engine's memory)."""
    return {
        str(task_id): str(status) for task_id, status in select(database, "SELECT task_id, status FROM tasks")
    }


@asynccontextmanager
async def database_held(engine: Engine) -> AsyncIterator[None]:
    """Keep the database thread busy for the body; everything handed to it waits behind."""
    gate = threading.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine._store.read, lambda conn: gate.wait())
        await trio.testing.wait_all_tasks_blocked()
        try:
            yield
        finally:
            gate.set()


async def submit_all(engine: Engine, ids: list[str], outcomes: dict[str, Any]) -> None:
    async def one(task_id: str) -> None:
        try:
            outcomes[task_id] = await engine.task_submit("echo", {"message": task_id}, task_id=task_id)
        except Exception as exc:
            outcomes[task_id] = exc

    async with trio.open_nursery() as nursery:
        for task_id in ids:
            nursery.start_soon(one, task_id)
        await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked()


async def test_concurrent_submissions_share_one_transaction(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause("only submissions")
        ids = [f"t{i}" for i in range(20)]
        outcomes: dict[str, Any] = {}
        before = engine.batches
        async with trio.open_nursery() as nursery:
            async with database_held(engine):
                nursery.start_soon(submit_all, engine, ids, outcomes)
                await trio.testing.wait_all_tasks_blocked()
                assert outcomes == {}, "answered before the transaction holding it was committed"
        assert all(isinstance(outcomes[i], dict) and outcomes[i]["success"] for i in ids), outcomes
        # the first one may have been taken alone before the others arrived; the rest share one
        assert engine.batches - before <= 2
        assert {i: "queued" for i in ids}.items() <= rows(database).items()


async def test_a_submission_that_fails_at_recording_fails_alone(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause("only submissions")
        await engine.task_submit("echo", {"message": "first"}, task_id="taken")
        ids = ["a", "b", "taken", "c"]
        outcomes: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            async with database_held(engine):
                nursery.start_soon(submit_all, engine, ids, outcomes)
                await trio.testing.wait_all_tasks_blocked()
        assert isinstance(outcomes["taken"], ConflictError)
        assert all(outcomes[i]["success"] for i in "abc")
        on_disk = rows(database)
        assert {k: on_disk[k] for k in ["a", "b", "c", "taken"]} == dict.fromkeys(
            ["a", "b", "c", "taken"], "queued"
        )


async def test_a_write_that_fails_in_a_batch_fails_alone(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        # a finished task is only in the database: its id is refused by the INSERT, inside the batch
        await engine.task_submit("echo", {"message": "old"}, task_id="old")
        await wait_status(engine, "old", "completed")
        await engine.queue_pause("only submissions")
        before = engine.batches
        ids = ["a", "old", "b", "c"]
        outcomes: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            async with database_held(engine):
                nursery.start_soon(submit_all, engine, ids, outcomes)
                await trio.testing.wait_all_tasks_blocked()
        assert isinstance(outcomes["old"], ConflictError), outcomes["old"]
        assert all(outcomes[i]["success"] for i in "abc")
        on_disk = rows(database)
        assert on_disk["old"] == "completed"  # not replaced by the refused submission
        assert {k: on_disk[k] for k in "abc"} == dict.fromkeys("abc", "queued")
        assert engine.batches > before  # committed one by one after the batch failed
        status = await engine.task_status("old")
        assert status["status"] == "completed" and status["payload"] == {"message": "old"}


async def test_an_acknowledged_submission_is_on_disk(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause("only submissions")
        for i in range(5):
            answer = await engine.task_submit("echo", {"message": str(i)})
            assert rows(database).get(answer["task_id"]) == "queued"


async def test_a_submitter_cancelled_before_its_batch_started_writes_nothing(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause("only submissions")
        outcomes: dict[str, Any] = {}
        second = trio.CancelScope()

        async def cancelled_submit() -> None:
            with second:
                await engine.task_submit("echo", {"message": "x"}, task_id="second")

        async with trio.open_nursery() as nursery:
            async with database_held(engine):
                # "first" is taken into a batch whose write waits behind the held read; "second" waits
                # for the next batch and is cancelled there
                nursery.start_soon(submit_all, engine, ["first"], outcomes)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(cancelled_submit)
                await trio.testing.wait_all_tasks_blocked()
                assert [request.taken for request in engine._committer.pending] == [False]
                second.cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert engine._committer.pending == []
        assert outcomes["first"]["success"]
        on_disk = rows(database)
        assert on_disk.get("first") == "queued" and "second" not in on_disk
        assert "second" not in [t["task_id"] for t in (await engine.task_list())["tasks"]]
