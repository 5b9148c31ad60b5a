"""The stores: SQLite's WAL and synchronous settings, atomic transactions and exclusive lock; and, on both
stores, that a slow commit does not stall the Trio loop while an acknowledged write is still on disk
before the tool answers."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_worker.taskqueue import pgstore, schema
from trio_worker.taskqueue.db import StoreError
from trio_worker.taskqueue.errors import QueueUnavailableError
from trio_worker.taskqueue.records import Registration
from trio_worker.taskqueue.rows import put_registration
from trio_worker.taskqueue.store import SqliteStore as Store

from .conftest import DEADLINE, Target, eventually, select, serving, wait_status
from .fakes import FakeExecutor

pytestmark = pytest.mark.anyio


async def test_the_database_uses_wal_and_full_sync_and_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "queue.db"
    db = Store(path)
    await db.open()
    try:
        settings = await db.read(
            lambda conn: (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
                conn.execute("PRAGMA user_version").fetchone()[0],
            )
        )
    finally:
        await db.close()
    assert settings == ("wal", 2, schema.SCHEMA_VERSION)  # 2 is FULL
    assert path.exists()


async def test_a_write_is_one_transaction_all_or_nothing(tmp_path: Path) -> None:
    db = Store(tmp_path / "q.db")
    await db.open()
    try:
        good = put_registration(Registration("w1", ["a"], 2))
        with pytest.raises(StoreError):
            await db.write([good, ("INSERT INTO no_such_table VALUES (1)", ())])
        rows = await db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM executors").fetchone()[0])
        assert rows == 0
        await db.write([good])
        names = await db.read(
            lambda conn: [tuple(row) for row in conn.execute("SELECT worker_id FROM executors")]
        )
        assert names == [("w1",)]
    finally:
        await db.close()


async def test_a_second_store_on_the_same_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = Store(tmp_path / "q.db")
    await first.open()
    second = Store(tmp_path / "q.db")
    with pytest.raises(QueueUnavailableError, match=r"in use by another task queue"):
        await second.open()
    await first.close()
    await second.open()
    await second.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    with pytest.raises(QueueUnavailableError, match=r"schema version"):
        await Store(path).open()


class HeldDisk:
    """Makes the commit of either store (``SqliteStore._apply`` on its database thread, ``pgstore._apply``
    on a worker thread) wait until the test releases it.

    ``entered`` is set when a commit has started; ``release()`` lets it go on. If the commit ran on the
    Trio thread instead, the loop could never reach ``release()``: the commit gives up waiting after
    ``DEADLINE`` seconds and ``released_in_time`` says so, failing the test instead of hanging it.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self._release = threading.Event()
        self.released_in_time = True
        original = Store._apply
        original_pg = pgstore._apply

        def hold() -> None:
            self.entered.set()
            if not self._release.wait(DEADLINE):
                self.released_in_time = False

        def held_apply(store: Store, writes: list[Any]) -> None:
            hold()
            original(store, writes)

        def held_pg_apply(db: Any, writes: Any) -> None:
            hold()
            original_pg(db, writes)

        monkeypatch.setattr(Store, "_apply", held_apply)
        monkeypatch.setattr(pgstore, "_apply", held_pg_apply)

    def release(self) -> None:
        self._release.set()


async def test_a_slow_commit_does_not_stall_the_loop_and_is_on_disk_before_the_answer(
    database: Target, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause()  # only the submit's own commit runs
        disk = HeldDisk(monkeypatch)
        answers: list[dict[str, Any]] = []
        seen_on_disk: list[Any] = []

        async def submit() -> None:
            answers.append(await engine.task_submit("echo", {"message": "x"}, task_id="slow"))
            # another process sees it at once
            seen_on_disk.extend(select(database, "SELECT status FROM tasks WHERE task_id = 'slow'"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit)
            # this task runs while the commit is held on the database thread: the loop is not stalled
            await eventually(disk.entered.is_set, "the submission's commit to start")
            assert answers == []  # and the answer waits for the commit
            disk.release()
        assert disk.released_in_time, "the commit blocked the Trio loop"
        assert answers[0]["status"] == "queued"
        assert seen_on_disk == [("queued",)]


async def test_a_tool_call_cancelled_during_its_commit_still_commits_and_memory_agrees(
    database: Target, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(database, fake) as engine:
        disk = HeldDisk(monkeypatch)
        scope = trio.CancelScope()

        async def submit() -> None:
            with scope:
                await engine.task_submit("gate", {"key": "cut"}, task_id="cut")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit)
            await eventually(disk.entered.is_set, "the insert's commit to start")
            scope.cancel()  # the caller gives up while the insert is being committed
            await trio.testing.wait_all_tasks_blocked()
            disk.release()
        assert scope.cancelled_caught
        assert disk.released_in_time
        await fake.wait_started("cut")  # committed, known to the scheduler, and run
        assert (await engine.task_status("cut"))["status"] == "running"
        fake.release("cut")
        await wait_status(engine, "cut", "completed")
    assert len(fake.calls_of("cut")) == 1
