"""The queue tools against a fake executor (``queue_ops.py``): pause and resume, reordering on resume,
clearing, and statistics from recorded times."""

from __future__ import annotations

import pytest

from trio_worker.taskqueue.errors import (
    InvalidRequestError,
    NotFoundError,
)

from .conftest import Target, serving, wait_status
from .fakes import FakeExecutor, ManualClock

pytestmark = pytest.mark.anyio


async def test_pause_holds_tasks_with_a_reason_and_resume_releases_them(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        paused = await engine.queue_pause("maintenance")
        assert paused["paused"] and paused["reason"] == "maintenance"
        answer = await engine.task_submit("echo", {"message": "later"})
        status = await engine.task_status(answer["task_id"])
        assert status["status"] == "queued"
        assert status["waiting_reason"] == "the queue is paused: maintenance"
        assert status["estimated_start_time"] is None
        assert (await engine.queue_stats())["paused"] is True
        resumed = await engine.queue_resume()
        assert resumed["was_paused"] and resumed["paused_for"] is not None
        await wait_status(engine, answer["task_id"], "completed")


@pytest.mark.parametrize("reorder", [True, False])
async def test_resume_reorders_priorities_changed_without_requeue_only_when_asked(
    database: Target, fake: FakeExecutor, reorder: bool
) -> None:
    async with serving(database, fake) as engine:
        await engine.worker_register("fake-0", max_concurrent_tasks=1)
        await engine.queue_pause()
        for key in "abc":
            await engine.task_submit("gate", {"key": key}, task_id=key)
        changed = await engine.task_priority("c", 10.0, requeue=False)
        assert changed["old_priority"] == 1.0 and changed["new_priority"] == 10.0
        assert changed["old_queue_position"] == 3 and changed["new_queue_position"] == 3
        await engine.queue_resume(reorder_by_priority=reorder)
        first = await fake.wait_started("c" if reorder else "a")
        assert fake.calls == [first]
        for key in "abc":
            fake.release(key)
        await wait_status(engine, "b", "completed")


async def test_queue_clear_changes_nothing_without_confirm(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        done = await engine.task_submit("echo", {"message": "done"})
        await wait_status(engine, done["task_id"], "completed")
        await engine.queue_pause()
        first = await engine.task_submit("echo", {"message": "1"})
        await engine.task_submit("echo", {"message": "2"})
        with pytest.raises(
            InvalidRequestError, match=r"^confirm: queue_clear would cancel 2 queued and delete 0"
        ):
            await engine.queue_clear()
        with pytest.raises(InvalidRequestError, match=r"^confirm: .* cancel 0 queued and delete 1 finished"):
            await engine.queue_clear(["completed"], confirm=False)
        assert (await engine.queue_stats())["counts"] == {
            "queued": 2,
            "running": 0,
            "input_required": 0,
            "completed": 1,
            "failed": 0,
            "cancelled": 0,
        }
        with pytest.raises(InvalidRequestError, match=r"^status_filter: running tasks cannot be cleared"):
            await engine.queue_clear(["running"], confirm=True)
        cleared = await engine.queue_clear(confirm=True)
        assert cleared["cancelled"] == 2 and cleared["deleted"] == 0
        status = await engine.task_status(first["task_id"])
        assert status["status"] == "cancelled" and "queue_clear" in status["cancel_reason"]
        purged = await engine.queue_clear(["completed", "cancelled"], confirm=True)
        assert purged["deleted"] == 3
        with pytest.raises(NotFoundError):
            await engine.task_status(done["task_id"])
        assert (await engine.task_list())["total_count"] == 0


async def test_queue_stats_are_computed_from_recorded_times(database: Target, fake: FakeExecutor) -> None:
    clock = ManualClock()
    async with serving(database, fake, clock=clock) as engine:
        empty = await engine.queue_stats()
        assert empty["average_wait_time"] is None and empty["average_execution_time"] is None
        assert empty["throughput"]["last_minute"]["tasks_per_minute"] is None
        await engine.worker_register("fake-0", max_concurrent_tasks=1)
        await engine.task_submit("gate", {"key": "s1"}, task_id="s1")
        await engine.task_submit("gate", {"key": "s2"}, task_id="s2")
        await fake.wait_started("s1")
        clock.advance(4.0)
        fake.release("s1")
        await fake.wait_started("s2")  # waited 4 s
        clock.advance(2.0)
        fake.release("s2")
        await wait_status(engine, "s2", "completed")
        failed = await engine.task_submit("flaky", {"key": "f", "failures": 1})
        await wait_status(engine, failed["task_id"], "failed")
        stats = await engine.queue_stats(include_worker_stats=True, include_historical=True)
        assert stats["counts"] == {
            "queued": 0,
            "running": 0,
            "input_required": 0,
            "completed": 2,
            "failed": 1,
            "cancelled": 0,
        }
        assert stats["average_execution_time"] == pytest.approx(3.0)  # successful runs: 4 s and 2 s
        assert stats["average_wait_time"] == pytest.approx(4.0 / 3)  # s1 0 s, s2 4 s, f 0 s
        minute = stats["throughput"]["last_minute"]
        assert minute["window_seconds"] == pytest.approx(6.0)  # the database holds 6 s of history
        assert (minute["completed"], minute["failed"]) == (2, 1)
        assert minute["tasks_per_minute"] == pytest.approx(30.0)
        assert minute["completed_per_minute"] == pytest.approx(20.0)
        assert stats["workers"][0]["worker_id"] == "fake-0"
        [echo_type] = [row for row in stats["historical"]["by_task_type"] if row["task_type"] == "gate"]
        assert echo_type["completed"] == 2 and echo_type["average_execution_time"] == pytest.approx(3.0)
