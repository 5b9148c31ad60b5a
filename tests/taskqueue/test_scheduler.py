"""The scheduler on a serving engine (``scheduler.py``): priority order, capabilities, executor limits,
waiting reasons across rounds, queue positions and start estimates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from trio_worker.taskqueue import router_cache as router_cache_module
from trio_worker.taskqueue import scheduler as scheduler_module
from trio_worker.taskqueue.views import iso

from .conftest import Target, eventually, serving, wait_status
from .fakes import FakeCall, FakeExecutor, ManualClock, ok, schema

pytestmark = pytest.mark.anyio


async def test_higher_priority_runs_first_and_equal_priorities_run_in_submission_order(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        await engine.worker_register("fake-0", max_concurrent_tasks=1)
        await engine.queue_pause("filling the queue")
        for key, priority in [("a", 1.0), ("b", 5.0), ("c", 1.0), ("d", 5.0), ("e", 3.0)]:
            answer = await engine.task_submit("gate", {"key": key}, task_id=key, priority=priority)
            assert answer["status"] == "queued" and answer["assigned_worker"] is None
        listing = await engine.task_list(status_filter="queued")
        assert [t["task_id"] for t in listing["tasks"]] == ["b", "d", "e", "a", "c"]
        assert [t["queue_position"] for t in listing["tasks"]] == [1, 2, 3, 4, 5]
        await engine.queue_resume()
        for key in ["b", "d", "e", "a", "c"]:
            await fake.wait_started(key)
            fake.release(key)
        await wait_status(engine, "c", "completed")
    assert [call.key for call in fake.calls] == ["b", "d", "e", "a", "c"]
    assert fake.most_concurrent["*"] == 1


async def test_tasks_go_to_an_executor_that_has_their_type_as_capability(tmp_path: Path) -> None:
    fake = FakeExecutor()
    fake.add_worker("cpu-0", [])

    async def render(call: FakeCall) -> dict[str, Any]:
        return ok({"rendered": True})

    async def echo(call: FakeCall) -> dict[str, Any]:
        return ok({"echoed": True})

    fake.tool("echo", schema({}), echo)
    fake.add_worker("gpu-0", [])
    fake.tool("render", schema({}), render, served=False)
    fake.worker_list[1]["tools"].append("render")
    async with serving(tmp_path / "q.db", fake) as engine:
        rendered = await engine.task_submit("render", {})
        echoed = await engine.task_submit("echo", {})
        assert (await wait_status(engine, rendered["task_id"], "completed"))["worker_id"] == "gpu-0"
        assert (await wait_status(engine, echoed["task_id"], "completed"))["worker_id"] == "cpu-0"
        assert (await engine.worker_status("gpu-0"))["workers"][0]["capabilities"] == ["render"]


async def test_a_task_only_an_offline_registered_executor_can_run_stays_queued_with_the_reason(
    tmp_path: Path, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_module, "RECHECK_INTERVAL", 0.02)
    monkeypatch.setattr(router_cache_module, "WORKERS_TTL", 0.01)

    async def photo(call: FakeCall) -> dict[str, Any]:
        return ok({"photo": "taken"})

    fake.tool("photo", schema({}), photo, served=False)
    async with serving(tmp_path / "q.db", fake) as engine:
        registered = await engine.worker_register("cam-0", capabilities=["photo"], max_concurrent_tasks=1)
        assert registered["live"] is False and registered["kind"] == "registered"
        answer = await engine.task_submit("photo", {})
        assert answer["status"] == "queued"
        assert "cam-0" in answer["waiting_reason"] and "no live worker process" in answer["waiting_reason"]
        view = (await engine.worker_status("cam-0"))["workers"][0]
        assert view["live"] is False and view["queued_tasks_only_it_can_run"] == 1 and "note" in view
        for _ in range(3):  # a few scheduler rounds later it is still there, still explained
            # two more rounds: at least one whole round (worker list, plan, commit) ran in between
            target = engine.dispatch_rounds + 2
            await eventually(
                lambda target=target: engine.dispatch_rounds >= target, f"scheduler round {target}"
            )
            status = await engine.task_status(answer["task_id"])
            assert status["status"] == "queued" and "cam-0" in status["waiting_reason"]
        fake.add_worker("cam-0", ["photo"])
        done = await wait_status(engine, answer["task_id"], "completed")
        assert done["worker_id"] == "cam-0"
        assert (await engine.worker_status("cam-0"))["workers"][0]["live"] is True


async def test_an_executor_runs_at_most_its_limit_at_once(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        await engine.worker_register("fake-0", max_concurrent_tasks=2)
        ids = [(await engine.task_submit("gate", {"key": f"k{i}"}))["task_id"] for i in range(5)]
        await fake.wait_started("k0")
        await fake.wait_started("k1")
        view = (await engine.worker_status("fake-0"))["workers"][0]
        assert view["running_tasks"] == 2 and view["available_slots"] == 0
        assert view["queued_tasks_only_it_can_run"] == 3
        waiting = await engine.task_status(ids[2])
        assert waiting["status"] == "queued" and "waiting for a free slot" in waiting["waiting_reason"]
        fake.release("k0")
        await fake.wait_started("k2")
        for i in range(5):
            fake.release(f"k{i}")
        for task_id in ids:
            await wait_status(engine, task_id, "completed")
    assert fake.most_concurrent["*"] == 2


async def test_queue_positions_and_estimates_come_from_measurements_or_are_null(
    database: Target, fake: FakeExecutor
) -> None:
    clock = ManualClock()
    async with serving(database, fake, clock=clock) as engine:
        await engine.worker_register("fake-0", max_concurrent_tasks=1)
        await engine.task_submit("gate", {"key": "m1"}, task_id="m1")
        queued = await engine.task_submit("gate", {"key": "m2"}, task_id="m2")
        assert queued["queue_position"] == 1
        assert queued["estimated_start_time"] is None  # "gate" never ran to the end: nothing measured
        await fake.wait_started("m1")
        clock.advance(10.0)
        fake.release("m1")
        await fake.wait_started("m2")  # m2 starts at T+10 and runs
        start = clock.now
        m3 = await engine.task_submit("gate", {"key": "m3"}, task_id="m3")
        m4 = await engine.task_submit("gate", {"key": "m4"}, task_id="m4")
        blocker = await engine.task_submit("forever", {"key": "never"}, task_id="never")
        m5 = await engine.task_submit("gate", {"key": "m5"}, task_id="m5")
        assert (
            m3["queue_position"],
            m4["queue_position"],
            blocker["queue_position"],
            m5["queue_position"],
        ) == (1, 2, 3, 4)
        assert m3["estimated_start_time"] == iso(start + 10.0)
        assert m4["estimated_start_time"] == iso(start + 20.0)
        assert blocker["estimated_start_time"] == iso(start + 30.0)
        assert m5["estimated_start_time"] is None  # behind a task whose duration was never measured
        listing = await engine.task_list(status_filter=["queued"])
        assert [t["estimated_start_time"] for t in listing["tasks"]] == [
            iso(start + 10.0),
            iso(start + 20.0),
            iso(start + 30.0),
            None,
        ]
        for key in ("m2", "m3", "m4"):
            fake.release(key)
        await engine.task_cancel("never")
        fake.release("m5")
        await wait_status(engine, "m5", "completed")


async def test_a_held_engine_starts_nothing_new_and_lets_what_runs_finish(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        await engine.worker_register("fake-0", max_concurrent_tasks=1)
        first = (await engine.task_submit("gate", {"key": "k0"}))["task_id"]
        second = (await engine.task_submit("gate", {"key": "k1"}))["task_id"]
        await fake.wait_started("k0")
        engine.hold()  # the worker was drained: a reload or a stop
        fake.release("k0")
        await wait_status(engine, first, "completed")
        rounds = engine.dispatch_rounds
        engine.wake()
        with trio.move_on_after(0.5):  # let the scheduler look again: it must start nothing
            while engine.dispatch_rounds == rounds:
                await trio.sleep(0.01)
        assert engine.dispatch_rounds > rounds
        assert (await engine.task_status(second))["status"] == "queued"
        assert "k1" not in fake.started_events or not fake.started_events["k1"].is_set()
