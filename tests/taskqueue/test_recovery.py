"""Recovery after a crash: an engine is dropped in the middle of its work (its nursery cancelled, so it
writes nothing more — what a kill -9 leaves behind), a new engine opens the same database, and every task
ends in exactly one terminal state, with its attempts counted, none lost and none run twice at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_worker.taskqueue import Engine
from trio_worker.taskqueue.errors import QueueUnavailableError

from .conftest import Target, expire_leases, select, serving, wait_status, wait_workflow
from .fakes import FakeExecutor, standard_executor

pytestmark = pytest.mark.anyio

QUICK_RETRY = {"max_retries": 2, "backoff_factor": 0.001}


@pytest.mark.slow  # about 2 s: recovery waits on the engine's real 1 s timers
async def test_after_a_crash_every_task_ends_in_exactly_one_terminal_state(database: Target) -> None:
    first = standard_executor()
    async with serving(database, first) as engine:
        await engine.worker_register("fake-0", max_concurrent_tasks=4)
        done = await engine.task_submit("echo", {"message": "before"}, task_id="done")
        await wait_status(engine, "done", "completed")
        await engine.task_submit("gate", {"key": "A"}, task_id="A")  # no retries: fails on recovery
        await engine.task_submit("gate", {"key": "B"}, task_id="B", retry_policy=QUICK_RETRY)
        await engine.workflow_submit(
            "crashy",
            [
                {"step_id": "x", "action": "gate", "inputs": {"key": "X"}, "retry_policy": QUICK_RETRY},
                {"step_id": "y", "action": "echo", "inputs": {"message": "${steps.x.output.key}"}},
            ],
            workflow_id="wf",
        )
        await engine.task_submit("gate", {"key": "P"}, task_id="P", retry_policy=QUICK_RETRY)
        await engine.task_submit("gate", {"key": "C"}, task_id="C")  # queued: all four slots taken
        await engine.task_submit("echo", {"message": "never"}, task_id="K")
        await engine.task_cancel("K")
        for key in "ABXP":
            await first.wait_started(key)
        assert (await engine.task_status("C"))["status"] == "queued"
    # the engine is gone mid-flight; its calls were cancelled in their "workers"
    assert {call.key: call.outcome for call in first.calls if call.key in "ABXP"} == dict.fromkeys(
        "ABXP", "cancelled"
    )
    assert open_rows(database) == {
        "A": "running",
        "B": "running",
        "P": "running",
        "wf/x": "running",
        "C": "queued",
    }

    expire_leases(database)
    second = standard_executor()
    for key in "BXC":
        second.release(key)
    async with serving(database, second) as engine:
        failed = await wait_status(engine, "A", "failed")
        assert failed["attempts"] == 1 and failed["error"].startswith("interrupted: the task queue stopped")
        completed = {key: await wait_status(engine, key, "completed") for key in ("B", "C", "wf/x", "wf/y")}
        assert completed["B"]["attempts"] == 2  # the interrupted run counted
        assert completed["C"]["attempts"] == 1
        assert completed["wf/x"]["attempts"] == 2
        await wait_workflow(engine, "wf", "completed")
        assert (await engine.workflow_result("wf"))["outputs"]["y"] == {"message": "X"}
        assert (await engine.task_status(done["task_id"]))["attempts"] == 1
        assert (await engine.task_status("K"))["status"] == "cancelled"
        metrics = (await engine.task_status("B", include_metrics=True))["metrics"]
        assert [a["outcome"] for a in metrics["attempts"]] == ["interrupted", "completed"]
        p = await second.wait_started("P")  # re-queued and running again, once
        assert p.outcome == "running"
    # P was running when the second engine went away too: a third start finds it running once more
    expire_leases(database)
    third = standard_executor()
    third.release("P")
    async with serving(database, third) as engine:
        assert (await wait_status(engine, "P", "completed"))["attempts"] == 3
    rows = terminal_rows(database)
    assert rows == {
        "done": ("completed", 1),
        "A": ("failed", 1),
        "B": ("completed", 2),
        "C": ("completed", 1),
        "wf/x": ("completed", 2),
        "wf/y": ("completed", 1),
        "K": ("cancelled", 0),
        "P": ("completed", 3),
    }
    assert open_attempts(database) == 0
    for executor in (second, third):
        assert all(count == 1 for key, count in executor.most_concurrent.items() if key != "*")
        keys = [call.key for call in executor.calls]
        assert len(keys) == len(set(keys)), keys  # no task ran twice after recovery


async def test_queued_tasks_survive_a_crash_in_their_order_and_the_pause_too(database: Target) -> None:
    first = standard_executor()
    async with serving(database, first) as engine:
        await engine.worker_register("fake-0", max_concurrent_tasks=1)
        await engine.queue_pause("overnight")
        for key, priority in [("low", 1.0), ("high", 9.0), ("mid", 5.0)]:
            await engine.task_submit("gate", {"key": key}, task_id=key, priority=priority)
    second = standard_executor()
    async with serving(database, second) as engine:
        stats = await engine.queue_stats()
        assert stats["paused"] and stats["pause_reason"] == "overnight" and stats["counts"]["queued"] == 3
        assert (await engine.worker_status("fake-0"))["workers"][0]["max_concurrent_tasks"] == 1
        await engine.queue_resume()
        for key in ("high", "mid", "low"):
            await second.wait_started(key)
            second.release(key)
        await wait_status(engine, "low", "completed")
    assert [call.key for call in second.calls] == ["high", "mid", "low"]


async def test_a_workflow_waiting_for_another_goes_on_after_a_crash(database: Target) -> None:
    first = standard_executor()
    async with serving(database, first) as engine:
        await engine.workflow_submit(
            "one",
            [{"step_id": "s", "action": "gate", "inputs": {"key": "one"}, "retry_policy": QUICK_RETRY}],
            workflow_id="w1",
        )
        await engine.workflow_submit(
            "two",
            [{"step_id": "s", "action": "echo", "inputs": {"message": "go"}}],
            workflow_id="w2",
            dependencies=["w1"],
        )
        await first.wait_started("one")
    expire_leases(database)
    second = standard_executor()
    second.release("one")
    async with serving(database, second) as engine:
        await wait_workflow(engine, "w2", "completed")
        w1 = await engine.workflow_status("w1")
        assert w1["status"] == "completed" and w1["steps"][0]["attempts"] == 2


async def test_two_engines_cannot_share_a_sqlite_database(tmp_path: Path, fake: FakeExecutor) -> None:
    database = tmp_path / "queue.db"
    async with serving(database, fake):
        with pytest.raises(QueueUnavailableError, match=r"^database: .* is in use by another task queue"):
            await Engine(database, fake).serve()
    async with serving(database, fake) as engine:  # released when the first one ended
        await engine.task_list()


def query(database: Target, sql: str) -> list[tuple[object, ...]]:
    """Read the database directly, as another process would."""
    return select(database, sql)


def open_rows(path: Target) -> dict[object, object]:
    return dict(query(path, "SELECT task_id, status FROM tasks WHERE status IN ('queued', 'running')"))


def terminal_rows(path: Target) -> dict[object, tuple[object, object]]:
    return {row[0]: (row[1], row[2]) for row in query(path, "SELECT task_id, status, attempts FROM tasks")}


def open_attempts(path: Target) -> object:
    return query(path, "SELECT COUNT(*) FROM attempts WHERE ended_at IS NULL")[0][0]
