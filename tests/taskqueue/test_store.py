"""The SQLite store: WAL and synchronous settings, atomic transactions, the exclusive lock, and — the
point of its own thread — that a slow disk does not stall the Trio loop while an acknowledged write is
still on disk before the tool answers."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_worker.taskqueue import schema
from trio_worker.taskqueue.errors import QueueUnavailableError
from trio_worker.taskqueue.records import Registration
from trio_worker.taskqueue.rows import put_registration
from trio_worker.taskqueue.store import Store

from .conftest import serving, wait_status
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
        with pytest.raises(sqlite3.Error):
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


async def test_a_slow_commit_does_not_stall_the_loop_and_is_on_disk_before_the_answer(
    db_path: Path, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(db_path, fake) as engine:
        await engine.queue_pause()  # only the submit's own commit runs
        original = Store._apply
        slow = 0.4

        def slow_apply(self: Store, writes: list[Any]) -> None:
            time.sleep(slow)  # a disk that takes its time, on the database thread
            original(self, writes)

        monkeypatch.setattr(Store, "_apply", slow_apply)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await trio.sleep(0.01)
                ticks += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            started = trio.current_time()
            answer = await engine.task_submit("echo", {"message": "x"}, task_id="slow")
            elapsed = trio.current_time() - started
            seen = ticks
            nursery.cancel_scope.cancel()
        assert answer["status"] == "queued"
        assert elapsed >= slow  # the answer waited for the commit...
        assert seen >= 10, seen  # ...while the loop kept running other tasks
        with closing(sqlite3.connect(db_path)) as conn:  # another process sees it at once
            assert conn.execute("SELECT status FROM tasks WHERE task_id = 'slow'").fetchone() == ("queued",)
        monkeypatch.setattr(Store, "_apply", original)


async def test_a_tool_call_cancelled_during_its_commit_still_commits_and_memory_agrees(
    db_path: Path, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(db_path, fake) as engine:
        original = Store._apply

        def slow_apply(self: Store, writes: list[Any]) -> None:
            time.sleep(0.2)
            original(self, writes)

        monkeypatch.setattr(Store, "_apply", slow_apply)
        with trio.move_on_after(0.05) as scope:
            await engine.task_submit("gate", {"key": "cut"}, task_id="cut")
        assert scope.cancelled_caught  # the caller gave up while the insert was being committed
        monkeypatch.setattr(Store, "_apply", original)
        await fake.wait_started("cut")  # committed, known to the scheduler, and run
        assert (await engine.task_status("cut"))["status"] == "running"
        fake.release("cut")
        await wait_status(engine, "cut", "completed")
    assert len(fake.calls_of("cut")) == 1
