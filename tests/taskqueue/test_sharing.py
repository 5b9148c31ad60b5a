"""Several engines on one PostgreSQL database (docs/architecture.md): each with its own executor (its own
supervisor's worker processes), in one Trio run, on the session's real server.

What is checked: a task made through one engine is seen, run, cancelled and read through another;
claims never start a task twice; a pause through one holds every engine; an engine that dies loses its
running tasks to another once its lease ran out, settled by the recovery rules; an engine that cannot
renew its leases stops its own runs; workflows and protocol task notifications cross engines; a
decision taken on a stale mirror is taken again, never committed.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_worker.taskqueue import Engine
from trio_worker.taskqueue.db import StoreError

from .conftest import eventually, select, serving, wait_status, wait_workflow
from .fakes import FakeExecutor, standard_executor
from .test_protocol_tasks import CLIENT, add_protocol_tools, wait_wire

pytestmark = pytest.mark.anyio

LEASE = 0.5
"""The lease of the engines that die in these tests (seconds): their tasks are taken over soon."""


@pytest.fixture
def shared(postgres: Any) -> str:
    """One PostgreSQL database for the engines of a test."""
    return str(postgres.database())


def idle_executor() -> FakeExecutor:
    """The standard tools in the catalog, but no worker process: this engine runs nothing."""
    fake = standard_executor()
    fake.worker_list.clear()
    return fake


@asynccontextmanager
async def two(
    shared: str, a: FakeExecutor, b: FakeExecutor, **kwargs: Any
) -> AsyncIterator[tuple[Engine, Engine]]:
    async with serving(shared, a, **kwargs) as first, serving(shared, b, **kwargs) as second:
        yield first, second


def claimed_by(shared: str, task_id: str) -> str | None:
    return select(shared, "SELECT claimed_by FROM tasks WHERE task_id = ?", task_id)[0][0]  # type: ignore[no-any-return]


async def test_a_task_submitted_through_one_engine_runs_on_the_other_and_both_read_it(shared: str) -> None:
    runner = standard_executor()
    async with two(shared, idle_executor(), runner) as (front, back):
        await front.task_submit("gate", {"key": "g"}, task_id="g")  # the front has no executor for it
        call = await runner.wait_started("g")  # the other engine heard of it and claimed it
        status = await wait_status(front, "g", "running")
        assert status["worker_id"] == "fake-0" and claimed_by(shared, "g") == back.engine_id
        runner.release("g")
        for engine in (front, back):
            done = await wait_status(engine, "g", "completed")
            assert done["attempts"] == 1
        assert (await front.task_result("g"))["output"] == {"key": "g", "value": None}
        assert call.outcome == "returned"


async def test_two_engines_claiming_one_queue_start_every_task_exactly_once(shared: str) -> None:
    left, right = standard_executor(), standard_executor()
    async with two(shared, left, right) as (a, b):
        for engine in (a, b):
            await engine.worker_register("fake-0", max_concurrent_tasks=3)
        ids = [f"t{n}" for n in range(60)]
        async with trio.open_nursery() as nursery:
            for n, task_id in enumerate(ids):
                submit = functools.partial((a if n % 2 else b).task_submit, task_id=task_id)
                nursery.start_soon(submit, "echo", {"message": task_id})
        for task_id in ids:
            assert (await wait_status(a, task_id, "completed"))["attempts"] == 1
    calls = [call.arguments["message"] for fake in (left, right) for call in fake.calls]
    assert sorted(calls) == sorted(ids)  # each ran once, on one engine or the other
    assert left.calls and right.calls  # and both engines did take some
    owners = {row[0] for row in select(shared, "SELECT claimed_by FROM tasks")}
    assert owners == {a.engine_id, b.engine_id}


@pytest.mark.parametrize("force", [False, True])
async def test_a_cancel_through_one_engine_stops_the_call_running_on_the_other(
    shared: str, force: bool
) -> None:
    runner = standard_executor()
    async with two(shared, runner, idle_executor()) as (owner, other):
        await owner.task_submit("forever", {"key": "f"}, task_id="f")
        call = await runner.wait_started("f")
        answer = await other.task_cancel("f", reason="not needed", force=force)
        assert answer["success"] and answer["status"] == "cancelled" and answer["forced"] is force
        await eventually(lambda: call.outcome == "cancelled", "the call to be cancelled in its worker")
        for engine in (owner, other):
            status = await wait_status(engine, "f", "cancelled")
            assert status["cancel_reason"] == "not needed"
        assert select(shared, "SELECT COUNT(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]


async def test_a_protocol_task_made_through_one_engine_is_read_and_cancelled_through_the_other(
    shared: str,
) -> None:
    runner = standard_executor()
    add_protocol_tools(runner)
    async with two(shared, runner, idle_executor()) as (owner, other):
        created = await owner.protocol_create("gate", {"key": "p"}, CLIENT)
        call = await runner.wait_started("p")
        assert (await wait_wire(other, created["taskId"], "working"))["taskId"] == created["taskId"]
        assert await other.protocol_cancel(created["taskId"]) == {}
        await eventually(lambda: call.outcome == "cancelled", "the call to be cancelled in its worker")
        assert (await owner.protocol_get(created["taskId"]))["status"] == "cancelled"


async def test_a_pause_through_one_engine_holds_the_other_until_a_resume_through_it(shared: str) -> None:
    runner = standard_executor()
    async with two(shared, idle_executor(), runner) as (front, back):
        await front.queue_pause("maintenance")
        await back.task_submit("echo", {"message": "wait"}, task_id="w")
        with trio.move_on_after(0.5):
            await runner.wait_started("w")
        assert (await back.task_status("w"))["status"] == "queued"
        assert (await back.queue_stats())["pause_reason"] == "maintenance"
        await back.queue_resume()
        await wait_status(front, "w", "completed")


async def test_a_dead_engines_running_tasks_are_taken_over_by_the_recovery_rules(shared: str) -> None:
    quick = {"max_retries": 2, "backoff_factor": 0.001}
    survivor = standard_executor()
    add_protocol_tools(survivor)
    for key in ("again", "retried"):
        survivor.release(key)
    doomed = standard_executor()
    add_protocol_tools(doomed)
    async with serving(shared, idle_executor(), lease_seconds=LEASE) as other:
        async with serving(shared, doomed, lease_seconds=LEASE) as dying:
            await dying.task_submit("gate", {"key": "retried"}, task_id="retried", retry_policy=quick)
            await dying.task_submit("gate", {"key": "single"}, task_id="single")
            again = (await dying.protocol_create("gate", {"key": "again"}, CLIENT, run_again=True))["taskId"]
            once = (await dying.protocol_create("gate", {"key": "once"}, CLIENT))["taskId"]
            for key in ("retried", "single", "again", "once"):
                await doomed.wait_started(key)
        # the engine died mid-run (nothing more written); its leases run out and the other takes over
        async with serving(shared, survivor, lease_seconds=LEASE) as taker:
            assert (await wait_status(taker, "retried", "completed"))["attempts"] == 2
            failed = await wait_status(other, "single", "failed")
            assert failed["error"].startswith("interrupted: the task queue stopped while attempt 1")
            assert (await wait_wire(taker, again, "completed"))["status"] == "completed"
            lost = await wait_wire(other, once, "failed")
            assert "neither idempotent nor read-only" in lost["error"]["message"]
            logs = (await other.task_status("single", include_logs=True))["logs"]
            assert any("stopped renewing its lease" in line["message"] for line in logs)
    assert {call.key for call in survivor.calls} == {"retried", "again"}  # never "once" nor "single"


async def test_an_engine_that_cannot_renew_its_leases_stops_its_runs(
    shared: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = standard_executor()
    add_protocol_tools(doomed)
    async with serving(shared, doomed, lease_seconds=LEASE) as engine:

        async def unreachable() -> None:
            raise StoreError("the database cannot be reached")

        assert engine._sharing is not None
        monkeypatch.setattr(engine._sharing.leases, "renew", unreachable)
        task = (await engine.protocol_create("gate", {"key": "cut"}, CLIENT, run_again=True))["taskId"]
        call = await doomed.wait_started("cut")
        await eventually(lambda: call.outcome == "cancelled", "the run to be stopped", deadline=10)
        doomed.release("cut")  # it may run again (idempotent): it does, and completes
        await wait_wire(engine, task, "completed")


async def test_a_workflow_runs_its_steps_on_the_engines_that_serve_them(shared: str) -> None:
    adder, echoer = standard_executor(), standard_executor()
    adder.worker_list[0]["tools"] = ["add"]
    echoer.worker_list[0]["tools"] = ["echo"]
    async with two(shared, adder, echoer) as (a, b):
        await a.workflow_submit(
            "across",
            [
                {"step_id": "sum", "action": "add", "inputs": {"a": 2, "b": 3}},
                {"step_id": "say", "action": "echo", "inputs": {"message": "sum=${steps.sum.output.sum}"}},
            ],
            workflow_id="wf",
        )
        await wait_workflow(b, "wf", "completed")
        assert (await a.workflow_result("wf"))["outputs"]["say"] == {"message": "sum=5"}
    assert [c.name for c in adder.calls] == ["add"] and [c.name for c in echoer.calls] == ["echo"]


async def test_protocol_task_changes_reach_the_hook_of_every_engine(shared: str) -> None:
    runner = standard_executor()
    add_protocol_tools(runner)
    heard: list[dict[str, Any]] = []
    async with (
        serving(shared, runner) as owner,
        serving(shared, idle_executor(), on_protocol_change=heard.append),
    ):
        created = await owner.protocol_create("echo", {"message": "hi"}, CLIENT)
        await wait_wire(owner, created["taskId"], "completed")
        await eventually(
            lambda: any(v["taskId"] == created["taskId"] and v["status"] == "completed" for v in heard),
            "the other engine's hook to hear of the completion",
        )


async def test_decisions_on_a_stale_mirror_are_taken_again(shared: str) -> None:
    async with two(shared, idle_executor(), idle_executor()) as (a, b):
        await a.task_submit("echo", {"message": "x"}, task_id="x")
        assert a._sharing is not None and b._sharing is not None
        # both engines change the same row at once, many times: every change is committed exactly once
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon((a if n % 2 else b).task_priority, "x", float(n))
        rev = select(shared, "SELECT rev FROM tasks WHERE task_id = 'x'")[0][0]
        assert rev == 1 + 20
        logs = (await b.task_status("x", include_logs=True))["logs"]
        assert sum(line["message"].startswith("priority ") for line in logs) == 20


async def test_a_listener_that_reconnects_reloads_the_mirror(shared: str) -> None:
    async with two(shared, idle_executor(), idle_executor()) as (a, b):
        await a.queue_pause()
        await a.task_submit("echo", {"message": "m"}, task_id="m")
        await eventually(lambda: "m" in b._state.tasks, "the other engine to hear of the task")
        b._state.drop("m")  # as if the notifications had been lost with the listener's connection
        b._state.paused = None
        assert b._sharing is not None
        b._sharing.mirror.deliver(None)  # what the listener does after it reconnected
        await eventually(lambda: "m" in b._state.tasks, "a reload of the mirror")
        assert b._state.paused is not None


async def test_a_workflow_cancelled_through_one_engine_stops_its_step_running_on_the_other(
    shared: str,
) -> None:
    runner = standard_executor()
    async with two(shared, runner, idle_executor()) as (owner, other):
        await owner.workflow_submit(
            "long",
            [
                {"step_id": "wait", "action": "forever", "inputs": {"key": "w"}},
                {
                    "step_id": "after",
                    "action": "echo",
                    "inputs": {"message": "never"},
                    "depends_on": ["wait"],
                },
            ],
            workflow_id="wf",
        )
        call = await runner.wait_started("w")
        answer = await other.workflow_cancel("wf", reason="enough")
        assert answer["status"] == "cancelled" and set(answer["cancelled_steps"]) == {"wait", "after"}
        assert call.outcome == "cancelled"  # the step's call was stopped in its worker before the answer
        assert (await owner.task_status("wf/wait"))["cancel_reason"] == "workflow cancelled (enough)"


async def test_a_cancel_asked_of_a_dead_engine_is_carried_out_by_the_one_that_takes_over(shared: str) -> None:
    doomed = standard_executor()
    async with serving(shared, idle_executor(), lease_seconds=LEASE) as other:
        async with serving(shared, doomed, lease_seconds=LEASE) as dying:
            await dying.task_submit("forever", {"key": "f"}, task_id="f", retry_policy={"max_retries": 3})
            await doomed.wait_started("f")
            dying._sharing.mirror.deliver = lambda payload: None  # type: ignore[union-attr]  # deaf, then dead
            with trio.move_on_after(0.2):  # the cancel is asked; nobody stops the call
                await other.task_cancel("f", reason="stop it")
        status = await wait_status(other, "f", "cancelled")  # taken over: cancelled, not run again
        assert status["cancel_reason"] == "stop it" and status["attempts"] == 1
