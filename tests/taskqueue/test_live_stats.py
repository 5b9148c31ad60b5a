"""``live_stats`` and the ``tasks:stats`` entry: the queue's figures from memory, for /status, /metrics
and ``top`` (issue 14, item 6: protocol tasks are counted with the queue's own)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from trio_worker.taskqueue import Engine, protocol_entries
from trio_worker.taskqueue.current import set_engine
from trio_worker.taskqueue.errors import QueueUnavailableError
from trio_worker.taskqueue.state import Changes, State

from .conftest import Target, eventually, expire_leases, serving, wait_status, wait_workflow
from .fakes import FakeExecutor, ManualClock, standard_executor
from .test_protocol_tasks import add_protocol_tools, create, wait_wire
from .test_scheduling import task

pytestmark = pytest.mark.anyio


def by_origin(mcp: int = 0, queue: int = 0) -> dict[str, int]:
    return {"mcp": mcp, "queue": queue}


def scanned(engine: Engine) -> dict[tuple[str, str], int]:
    """The unfinished counts the slow way, to check the ones kept by ``State.put``/``drop``."""
    counts: dict[tuple[str, str], int] = {}
    for record in engine._state.tasks.values():
        key = (record.status, record.origin)
        counts[key] = counts.get(key, 0) + 1
    return counts


async def test_unfinished_tasks_are_counted_by_status_and_origin_and_finished_ones_once(
    database: Target, fake: FakeExecutor
) -> None:
    add_protocol_tools(fake)
    async with serving(database, fake) as engine:
        asking = await create(engine, "asks")
        await wait_wire(engine, asking, "input_required")
        running = await create(engine, "gate", {"key": "P"})
        await fake.wait_started("P")
        queue_running = (await engine.task_submit("gate", {"key": "Q"}))["task_id"]
        await fake.wait_started("Q")
        await engine.workflow_submit("w", [{"step_id": "s", "action": "gate", "inputs": {"key": "W"}}])
        await fake.wait_started("W")
        done = await create(engine, "echo", {"message": "hi"})
        await wait_wire(engine, done, "completed")
        failed = await create(engine, "broken")
        await wait_wire(engine, failed, "failed")
        await engine.queue_pause("maintenance")
        queued = [(await engine.task_submit("echo", {"message": str(i)}))["task_id"] for i in range(2)]
        await create(engine, "echo", {"message": "held"})

        stats = engine.live_stats()
        assert stats == {
            "paused": True,
            "pause_reason": "maintenance",
            "tasks": {
                "queued": by_origin(mcp=1, queue=2),
                "running": by_origin(mcp=1, queue=2),  # the workflow's step is a queue task
                "input_required": by_origin(mcp=1),
            },
            "finished": {
                "completed": by_origin(mcp=1),
                "failed": by_origin(mcp=1),
                "cancelled": by_origin(),
            },
            "workflows": {"pending": 0, "running": 1},
            "expired": 0,
        }
        assert dict(engine._state.unfinished) == scanned(engine)

        await engine.protocol_cancel(asking)
        await engine.protocol_cancel(done)  # already ended: acknowledged, not counted again
        await engine.task_cancel(queued[0])
        fake.release("Q")
        await wait_status(engine, queue_running, "completed")
        await engine.queue_resume()
        await wait_status(engine, queued[1], "completed")
        fake.release("W")
        await wait_workflow(
            engine, (await engine.workflow_list())["workflows"][0]["workflow_id"], "completed"
        )

        # on a shared database a read may see the workflow's end committed a moment before this engine's
        # memory applied it (the mirror): the counts are memory's, so wait for the step's end there
        await eventually(
            lambda: engine.live_stats()["tasks"]["running"] == by_origin(mcp=1), "the step's end in memory"
        )
        stats = engine.live_stats()
        assert stats["paused"] is False and stats["pause_reason"] is None
        assert stats["tasks"]["input_required"] == by_origin()
        assert stats["tasks"]["running"] == by_origin(mcp=1)  # only P still runs
        assert stats["finished"] == {
            "completed": by_origin(mcp=2, queue=3),
            "failed": by_origin(mcp=1),
            "cancelled": by_origin(mcp=1, queue=1),
        }
        assert stats["workflows"] == {"pending": 0, "running": 0}
        assert dict(engine._state.unfinished) == scanned(engine)
        fake.release("P")
        await wait_wire(engine, running, "completed")
        assert engine.live_stats()["tasks"]["running"] == by_origin()
        assert engine._state.unfinished == {}


async def test_after_a_restart_unfinished_tasks_are_counted_again_and_finished_ones_from_zero(
    database: Target,
) -> None:
    first = standard_executor()
    add_protocol_tools(first)
    async with serving(database, first) as engine:
        asking = await create(engine, "asks")
        await wait_wire(engine, asking, "input_required")
        await create(engine, "gate", {"key": "once"}, run_again=False)
        await first.wait_started("once")
        done = await create(engine, "echo", {"message": "before"})
        await wait_wire(engine, done, "completed")
        assert engine.live_stats()["finished"]["completed"] == by_origin(mcp=1)
    expire_leases(database)
    second = standard_executor()
    add_protocol_tools(second)
    async with serving(database, second) as engine:
        stats = engine.live_stats()
        assert stats["tasks"]["input_required"] == by_origin(mcp=1)
        assert stats["tasks"]["running"] == by_origin()
        # the run that may not run again ended failed during this engine's recovery; the one completed
        # under the previous engine is not counted again
        assert stats["finished"]["failed"] == by_origin(mcp=1)
        assert stats["finished"]["completed"] == by_origin()


async def test_expired_counts_what_the_retention_sweep_deleted(database: Target, fake: FakeExecutor) -> None:
    clock = ManualClock()
    async with serving(database, fake, clock=clock, task_ttl=60, task_retention=60) as engine:
        protocol = await create(engine, "echo", {"message": "p"})
        await wait_wire(engine, protocol, "completed")
        queue = (await engine.task_submit("echo", {"message": "q"}))["task_id"]
        await wait_status(engine, queue, "completed")
        assert engine.live_stats()["expired"] == 0
        clock.advance(61)
        assert await engine.sweep() == 2
        assert engine.live_stats()["expired"] == 2
        assert await engine.sweep() == 0
        assert engine.live_stats()["expired"] == 2


async def test_the_entry_answers_from_memory_only(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause()
        reads: list[Any] = []
        store_read = engine._store.read

        async def counted_read(*args: Any, **kwargs: Any) -> Any:
            reads.append(args)
            return await store_read(*args, **kwargs)

        set_engine(engine)
        engine._store.read = counted_read  # type: ignore[method-assign]
        try:  # nothing else runs meanwhile: the entry never reaches a checkpoint
            answer = await protocol_entries.stats()
        finally:
            engine._store.read = store_read  # type: ignore[method-assign]
            set_engine(None)
        assert reads == []
        assert answer["paused"] is True and answer["pause_reason"] is None


async def test_an_engine_that_is_not_serving_refuses(database: Target, fake: FakeExecutor) -> None:
    with pytest.raises(QueueUnavailableError):
        Engine(database, fake).live_stats()


def test_apply_counts_a_task_as_finished_only_when_it_ends() -> None:
    state = State(tasks={"a": task("a", origin="mcp"), "b": replace(task("b"), status="running")})
    assert state.unfinished == {("queued", "mcp"): 1, ("running", "queue"): 1}

    def commit(*records: Any) -> None:
        c = Changes(state, 1.0, rng=random.Random(0), catalog=None)
        for record in records:
            c.put_task(record)
        c.created.update(r.task_id for r in records if r.task_id == "new")
        c.apply()

    commit(replace(state.tasks["a"], status="running"), replace(state.tasks["b"], status="failed"))
    assert state.unfinished == {("running", "mcp"): 1}
    assert state.finished == {("failed", "queue"): 1}
    commit(replace(task("b"), status="failed"))  # a finished task written again: it did not end now
    commit(replace(task("new"), status="cancelled"))  # created ended (e.g. a step of a cancelled workflow)
    assert state.finished == {("failed", "queue"): 1, ("cancelled", "queue"): 1}
