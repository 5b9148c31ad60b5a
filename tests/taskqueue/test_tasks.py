"""The engine's tasks against a fake executor: order, validation, retries, timeouts, cancellation, pause,
clearing, retry links, priorities, progress, listing and statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from trio_worker.taskqueue import Engine
from trio_worker.taskqueue import router_cache as router_cache_module
from trio_worker.taskqueue import scheduler as scheduler_module
from trio_worker.taskqueue import scheduling as scheduling_module
from trio_worker.taskqueue.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    QueueUnavailableError,
)
from trio_worker.taskqueue.views import iso

from .conftest import eventually, serving, wait_status
from .fakes import FakeCall, FakeExecutor, ManualClock, ok, schema

pytestmark = pytest.mark.anyio


async def test_higher_priority_runs_first_and_equal_priorities_run_in_submission_order(
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_a_payload_the_tool_schema_refuses_is_refused_at_submit_naming_the_field(
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
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
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
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
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
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
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_a_task_timeout_is_passed_to_the_call_and_fails_the_task(
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
        answer = await engine.task_submit("forever", {"key": "t"}, timeout=0.05)
        status = await wait_status(engine, answer["task_id"], "failed")
        assert status["error"] == "tool 'forever' timed out after 0.05 s"
        assert status["timeout"] == 0.05
    [call] = fake.calls_of("t")
    assert call.timeout == 0.05 and call.outcome == "timed out"


async def test_cancelling_a_queued_task_means_it_never_runs(db_path: Path, fake: FakeExecutor) -> None:
    async with serving(db_path, fake) as engine:
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
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_a_forced_cancel_does_not_wait_for_the_cleanup(db_path: Path, fake: FakeExecutor) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_pause_holds_tasks_with_a_reason_and_resume_releases_them(
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
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
    db_path: Path, fake: FakeExecutor, reorder: bool
) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_task_priority_with_requeue_moves_the_task_at_once(db_path: Path, fake: FakeExecutor) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_queue_clear_changes_nothing_without_confirm(db_path: Path, fake: FakeExecutor) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_task_retry_creates_a_linked_task_and_counts_the_chain(
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_a_registration_narrows_a_worker_process_and_unregistering_restores_it(
    db_path: Path, fake: FakeExecutor
) -> None:
    async with serving(db_path, fake) as engine:
        narrowed = await engine.worker_register("fake-0", capabilities=["echo"], max_concurrent_tasks=2)
        assert narrowed["live"] and narrowed["capabilities"] == ["echo"]
        answer = await engine.task_submit("add", {"a": 1, "b": 2})
        assert answer["status"] == "queued" and "no live executor can run 'add'" in answer["waiting_reason"]
        removed = await engine.worker_unregister("fake-0")
        assert removed["still_live"] is True
        await wait_status(engine, answer["task_id"], "completed")
        with pytest.raises(NotFoundError, match=r"worker process of the supervisor"):
            await engine.worker_unregister("fake-0")
        with pytest.raises(NotFoundError, match=r"^worker_id: no executor 'ghost'"):
            await engine.worker_status("ghost")


async def test_an_executor_runs_at_most_its_limit_at_once(db_path: Path, fake: FakeExecutor) -> None:
    async with serving(db_path, fake) as engine:
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
    db_path: Path, fake: FakeExecutor
) -> None:
    clock = ManualClock()
    async with serving(db_path, fake, clock=clock) as engine:
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


async def test_progress_reports_become_percentages_and_log_lines(db_path: Path, fake: FakeExecutor) -> None:
    async with serving(db_path, fake) as engine:
        answer = await engine.task_submit("progress", {"key": "p"})

        async def at(percent: float) -> bool:
            return (await engine.task_status(answer["task_id"]))["progress"] == percent

        await eventually(lambda: at(25.0), "25 %")
        assert (await engine.task_status(answer["task_id"]))["progress_message"] == "one quarter"
        fake.release("p")
        await eventually(lambda: at(75.0), "75 %")
        fake.release("p:end")
        done = await wait_status(engine, answer["task_id"], "completed")
        assert done["progress"] == 100.0
        logs = (await engine.task_status(answer["task_id"], include_logs=True))["logs"]
        assert [line["message"] for line in logs if line["message"].startswith("progress")] == [
            "progress (25%): one quarter",
            "progress (75%): three quarters",
        ]


async def test_server_busy_answers_are_retried_without_counting_attempts(
    db_path: Path, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduling_module, "BUSY_BACKOFF", 0.005)
    async with serving(db_path, fake) as engine:
        answer = await engine.task_submit("busy", {"key": "b", "times": 2})
        done = await wait_status(engine, answer["task_id"], "completed")
        assert done["attempts"] == 1 and done["max_retries"] == 0
    assert len(fake.calls_of("b")) == 3


async def test_a_call_the_router_refuses_fails_at_once_without_retries(
    db_path: Path, fake: FakeExecutor
) -> None:
    fake.catalog["ghost"] = dict(fake.catalog["text"], name="ghost")  # listed, but every call is refused
    fake.worker_list[0]["tools"].append("ghost")
    async with serving(db_path, fake) as engine:
        answer = await engine.task_submit(
            "ghost", {}, retry_policy={"max_retries": 3, "backoff_factor": 0.001}
        )
        failed = await wait_status(engine, answer["task_id"], "failed")
        assert failed["attempts"] == 1
        assert failed["error"] == "refused by the router: unknown tool 'ghost'"


async def test_task_list_filters_and_pages(db_path: Path, fake: FakeExecutor) -> None:
    async with serving(db_path, fake) as engine:
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


async def test_queue_stats_are_computed_from_recorded_times(db_path: Path, fake: FakeExecutor) -> None:
    clock = ManualClock()
    async with serving(db_path, fake, clock=clock) as engine:
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
        assert stats["counts"] == {"queued": 0, "running": 0, "completed": 2, "failed": 1, "cancelled": 0}
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


async def test_an_engine_not_serving_refuses_calls(db_path: Path, fake: FakeExecutor) -> None:
    engine = Engine(db_path, fake)
    with pytest.raises(QueueUnavailableError, match="not running"):
        await engine.task_list()
