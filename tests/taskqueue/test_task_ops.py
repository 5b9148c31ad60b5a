"""The task tools against a fake executor (``task_ops.py``): validation, retries, cancellation,
priorities, retry links, listing, and refusal while the engine is not serving."""

from __future__ import annotations

import pytest
import trio

from trio_worker.taskqueue import Engine
from trio_worker.taskqueue.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    QueueUnavailableError,
)

from .conftest import Target, eventually, serving, wait_status
from .fakes import FakeExecutor

pytestmark = pytest.mark.anyio


async def test_a_payload_the_tool_schema_refuses_is_refused_at_submit_naming_the_field(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        with pytest.raises(InvalidRequestError, match=r"^payload\.message: required$"):
            await engine.task_submit("echo", {})
        with pytest.raises(InvalidRequestError, match=r"^payload\.message: 5 is not of type 'string'$"):
            await engine.task_submit("echo", {"message": 5})
        with pytest.raises(InvalidRequestError, match=r"payload\.extra: unknown field"):
            await engine.task_submit("echo", {"message": "x", "extra": 1})
        with pytest.raises(InvalidRequestError, match=r"payload\.failures: -1 is less than the minimum of 0"):
            await engine.task_submit("flaky", {"key": "k", "failures": -1})
        assert (await engine.task_list())["total_count"] == 0
    assert fake.calls == []


async def test_unknown_task_types_and_bad_parameters_are_refused_with_the_field(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        with pytest.raises(InvalidRequestError, match=r"^task_type: unknown task type 'nope' \(no tool"):
            await engine.task_submit("nope", {})
        with pytest.raises(InvalidRequestError, match=r"^retry_policy\.max_retries: "):
            await engine.task_submit("echo", {"message": "x"}, retry_policy={"max_retries": -1})
        with pytest.raises(InvalidRequestError, match=r"^retry_policy\.backof: unknown field"):
            await engine.task_submit("echo", {"message": "x"}, retry_policy={"backof": 1})
        with pytest.raises(InvalidRequestError, match=r"^timeout: must be a number"):
            await engine.task_submit("echo", {"message": "x"}, timeout=0)
        with pytest.raises(InvalidRequestError, match=r"^task_id: 'a/b' is not a valid id"):
            await engine.task_submit("echo", {"message": "x"}, task_id="a/b")
        await engine.task_submit("echo", {"message": "x"}, task_id="same")
        with pytest.raises(ConflictError, match=r"^task_id: a task 'same' already exists"):
            await engine.task_submit("echo", {"message": "y"}, task_id="same")
        with pytest.raises(NotFoundError, match=r"^task_id: no task 'missing'"):
            await engine.task_status("missing")
        with pytest.raises(InvalidRequestError, match=r"^limit: must be an integer from 1 to 1000, got 0"):
            await engine.task_list(limit=0)
        with pytest.raises(InvalidRequestError, match=r"^status_filter: unknown status 'done'"):
            await engine.task_list(status_filter=["done"])


async def test_a_failing_attempt_is_retried_with_exponential_backoff_then_succeeds(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        answer = await engine.task_submit(
            "flaky", {"key": "k", "failures": 2}, retry_policy={"max_retries": 3, "backoff_factor": 0.05}
        )
        status = await wait_status(engine, answer["task_id"], "completed")
        assert status["attempts"] == 3
        result = await engine.task_result(answer["task_id"], include_logs=True)
        assert result["output"] == {"key": "k", "attempt": 3}
        messages = [line["message"] for line in result["logs"]]
        assert any("retry 1 of 3 in" in m and "boom 1" in m for m in messages)
        assert any("retry 2 of 3 in" in m and "boom 2" in m for m in messages)
        metrics = (await engine.task_status(answer["task_id"], include_metrics=True))["metrics"]
        assert [a["outcome"] for a in metrics["attempts"]] == ["failed", "failed", "completed"]
    calls = fake.calls_of("k")
    gaps = [later.started_at - earlier.ended_at for earlier, later in zip(calls, calls[1:], strict=False)]
    # retry n waits between half and all of 0.05 * 2**(n-1) seconds
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05, gaps


async def test_retries_run_out_and_the_default_policy_comes_from_the_tool(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        answer = await engine.task_submit(
            "flaky", {"key": "out", "failures": 9}, retry_policy={"max_retries": 1, "backoff_factor": 0.001}
        )
        status = await wait_status(engine, answer["task_id"], "failed")
        assert status["attempts"] == 2
        assert status["error"] == "tool 'flaky' failed: RuntimeError: boom 2"
        plain = await engine.task_submit("flaky", {"key": "once", "failures": 9})
        assert plain["retry_policy"]["max_retries"] == 0  # the tool's retry_policy is "none"
        assert (await wait_status(engine, plain["task_id"], "failed"))["attempts"] == 1
        safe = await engine.task_submit("retrying", {"key": "r", "failures": 0})
        assert safe["retry_policy"] == {"max_retries": 3, "backoff_factor": 1.0, "backoff": "exponential"}


async def test_cancelling_a_queued_task_means_it_never_runs(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause()
        answer = await engine.task_submit("echo", {"message": "never"})
        cancelled = await engine.task_cancel(answer["task_id"], reason="changed my mind")
        assert cancelled["success"] and cancelled["previous_status"] == "queued"
        await engine.queue_resume()
        status = await engine.task_status(answer["task_id"])
        assert status["status"] == "cancelled" and status["cancel_reason"] == "changed my mind"
        again = await engine.task_cancel(answer["task_id"])
        assert again["success"] is False and again["status"] == "cancelled"
    assert fake.calls == []


async def test_cancelling_a_running_task_cancels_its_call_and_waits_for_it(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        answer = await engine.task_submit("slow_cleanup", {"key": "r"})
        call = await fake.wait_started("r")
        outcome: dict[str, object] = {}

        async def cancel() -> None:
            outcome.update(await engine.task_cancel(answer["task_id"], reason="stop"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel)
            await eventually(lambda: call.outcome == "cleaning up", "the call to be cancelled")
            # the worker is still cleaning up: the cancel has not been acknowledged
            assert outcome == {}
            assert (await engine.task_status(answer["task_id"]))["status"] == "running"
            fake.release("r:cleanup")
        assert outcome["success"] is True and outcome["status"] == "cancelled"
        status = await engine.task_status(answer["task_id"], include_metrics=True)
        assert status["status"] == "cancelled" and status["cancel_reason"] == "stop"
        assert [a["outcome"] for a in status["metrics"]["attempts"]] == ["cancelled"]
    assert call.outcome == "cancelled"


async def test_a_forced_cancel_does_not_wait_for_the_cleanup(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        answer = await engine.task_submit("slow_cleanup", {"key": "f"})
        call = await fake.wait_started("f")
        with trio.fail_after(1):
            result = await engine.task_cancel(answer["task_id"], force=True)
        assert result["success"] and result["forced"] and result["status"] == "cancelled"
        assert (await engine.task_status(answer["task_id"]))["status"] == "cancelled"
        assert call.ended_at is None  # still cleaning up in its worker
        workers = (await engine.worker_status("fake-0"))["workers"]
        assert workers[0]["running_tasks"] == 1  # its slot stays taken until the call really stopped
        fake.release("f:cleanup")
        await eventually(lambda: call.ended_at is not None, "the call to stop")

        async def attempt_closed() -> bool:
            metrics = (await engine.task_status(answer["task_id"], include_metrics=True))["metrics"]
            return metrics["attempts"][0]["outcome"] == "cancelled"

        await eventually(attempt_closed, "the attempt to be closed")
        assert (await engine.task_status(answer["task_id"]))["status"] == "cancelled"


async def test_task_priority_with_requeue_moves_the_task_at_once(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause()
        for key in "abc":
            await engine.task_submit("echo", {"message": key}, task_id=key)
        moved = await engine.task_priority("c", 2.0)
        assert moved["requeued"] and moved["old_queue_position"] == 3 and moved["new_queue_position"] == 1
        back = await engine.task_priority("c", 1.0)  # behind the equals already queued
        assert back["new_queue_position"] == 3
        await engine.queue_resume()
        await wait_status(engine, "c", "completed")
        with pytest.raises(ConflictError, match=r"^task_id: task 'c' is completed"):
            await engine.task_priority("c", 3.0)


async def test_task_retry_creates_a_linked_task_and_counts_the_chain(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        original = await engine.task_submit("flaky", {"key": "x", "failures": 2}, priority=2.0, tags=["t"])
        await wait_status(engine, original["task_id"], "failed")
        first = await engine.task_retry(original["task_id"])
        assert first["task_id"] == original["task_id"] and first["retry_count"] == 1
        status = await wait_status(engine, first["retry_task_id"], "failed")
        assert (
            status["retry_of"] == original["task_id"]
            and status["tags"] == ["t"]
            and status["priority"] == 2.0
        )
        second = await engine.task_retry(first["retry_task_id"], {"priority": 7.0})
        assert second["retry_count"] == 2
        done = await wait_status(engine, second["retry_task_id"], "completed")
        assert done["retry_of"] == first["retry_task_id"] and done["priority"] == 7.0
        with pytest.raises(ConflictError, match=r"only failed or cancelled tasks can be retried"):
            await engine.task_retry(second["retry_task_id"])
        with pytest.raises(InvalidRequestError, match=r"^retry_config\.delay: "):
            await engine.task_retry(original["task_id"], {"delay": -1})


async def test_task_list_filters_and_pages(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        for index in range(5):
            await engine.task_submit(
                "echo",
                {"message": str(index)},
                task_id=f"t{index}",
                priority=float(index),
                tags=["all", f"n{index % 2}"],
            )
        for index in range(5):
            await wait_status(engine, f"t{index}", "completed")
        everything = await engine.task_list()
        assert [t["task_id"] for t in everything["tasks"]] == ["t4", "t3", "t2", "t1", "t0"]
        odd = await engine.task_list(tag_filter=["all", "n1"])
        assert [t["task_id"] for t in odd["tasks"]] == ["t3", "t1"]
        high = await engine.task_list(priority_min=3.0, worker_filter="fake-0", status_filter="completed")
        assert [t["task_id"] for t in high["tasks"]] == ["t4", "t3"]
        page = await engine.task_list(limit=2, offset=1)
        assert [t["task_id"] for t in page["tasks"]] == ["t3", "t2"]
        assert (page["total_count"], page["returned_count"], page["has_more"]) == (5, 2, True)
        last = await engine.task_list(limit=2, offset=4)
        assert last["has_more"] is False and last["returned_count"] == 1
        assert (await engine.task_list(worker_filter="other"))["total_count"] == 0


async def test_an_engine_not_serving_refuses_calls(database: Target, fake: FakeExecutor) -> None:
    engine = Engine(database, fake)
    with pytest.raises(QueueUnavailableError, match="not running"):
        await engine.task_list()
