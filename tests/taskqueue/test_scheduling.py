"""The scheduling rules on their own (``scheduling.py``): retry delays, queue order, the dispatch plan
and start estimates."""

from __future__ import annotations

import random
from typing import Any

import pytest

from trio_worker.taskqueue.records import Registration, TaskRecord
from trio_worker.taskqueue.scheduling import (
    MAX_BACKOFF,
    estimate_starts,
    executor_views,
    plan,
    queue_key,
    retry_delay,
)


def task(
    task_id: str, task_type: str = "t", priority: float = 1.0, seq: int = 0, **fields: Any
) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        seq=seq,
        task_type=task_type,
        payload={},
        priority=priority,
        order_priority=priority,
        order_seq=seq,
        tags=[],
        timeout=None,
        max_retries=0,
        backoff_factor=1.0,
        backoff="exponential",
        metadata={},
        status="queued",
        submitted_at=0.0,
        queued_at=0.0,
        **fields,
    )


def worker(worker_id: str, tools: list[str], in_flight: int = 0, state: str = "ready") -> dict[str, Any]:
    return {
        "id": worker_id,
        "runtime": "trio",
        "pid": 1,
        "state": state,
        "tools": tools,
        "in_flight": in_flight,
    }


@pytest.mark.parametrize("retry", [1, 2, 3, 4])
def test_exponential_retry_delays_double_with_half_of_them_jitter(retry: int) -> None:
    rng = random.Random(7)
    full = 0.5 * 2 ** (retry - 1)
    delays = [retry_delay(retry, 0.5, "exponential", rng) for _ in range(200)]
    assert all(full / 2 <= d <= full for d in delays)
    assert max(delays) - min(delays) > full / 4  # really jittered


def test_linear_delays_and_the_cap() -> None:
    rng = random.Random(1)
    assert 1.5 <= retry_delay(3, 1.0, "linear", rng) <= 3.0
    assert retry_delay(60, 10.0, "exponential", rng) <= MAX_BACKOFF


def test_queue_order_is_priority_then_submission() -> None:
    tasks = [task("a", priority=1, seq=1), task("b", priority=2, seq=2), task("c", priority=1, seq=0)]
    assert [t.task_id for t in sorted(tasks, key=queue_key)] == ["b", "c", "a"]


def test_the_plan_respects_capabilities_limits_and_priority() -> None:
    executors = executor_views(
        [worker("w1", ["t", "u"], in_flight=3), worker("w2", ["t"])],
        {
            "w1": Registration("w1", [], 1),
            "w2": Registration("w2", [], 1),
            "off": Registration("off", ["v"], 2),
        },
        {},
    )
    queued = [
        task("t1", "t", 9),
        task("u1", "u", 8),
        task("t2", "t", 7),
        task("v1", "v", 6),
        task("x1", "x", 5),
    ]
    decided = plan(queued, executors, {})
    # t1 takes the less busy w2 (equal free slots, fewer calls in flight); u1 can only use w1
    assert [(t.task_id, e) for t, e in decided.assignments] == [("t1", "w2"), ("u1", "w1")]
    assert decided.reasons["t2"].startswith(
        "waiting for a free slot on an executor that runs 't' (w1 1/1, w2 1/1)"
    )
    assert (
        "registered executor(s) off have it as a capability but no live worker process"
        in decided.reasons["v1"]
    )
    assert decided.reasons["x1"] == "no live executor can run 'x' (no worker process that serves it is up)"


def test_a_lower_priority_task_may_use_an_executor_the_higher_one_cannot() -> None:
    executors = executor_views(
        [worker("w1", ["a"]), worker("w2", ["b"])], {"w1": Registration("w1", [], 1)}, {"w1": 1}
    )
    decided = plan([task("hi", "a", 9), task("lo", "b", 1)], executors, {})
    assert [t.task_id for t, _ in decided.assignments] == ["lo"]


def test_not_ready_and_unroutable_workers_get_no_tasks() -> None:
    executors = executor_views([worker("w1", ["t"], state="draining")], {}, {})
    decided = plan([task("a"), task("b")], executors, {"b": "waiting for its retry delay"})
    assert decided.assignments == []
    assert decided.reasons["b"] == "waiting for its retry delay"


def test_estimates_simulate_the_slots_with_measured_means() -> None:
    executors = executor_views([worker("w", ["t", "u"])], {"w": Registration("w", [], 2)}, {"w": 2})
    running = [(task("r1", "t", started_at=100.0), "w"), (task("r2", "t", started_at=104.0), "w")]
    queued = [task("q1", "t"), task("q2", "t"), task("q3", "u"), task("q4", "t")]
    estimates = estimate_starts(queued, running, executors, {"t": 10.0}, 105.0, paused=False)
    # slots free at 110 and 114; q1 110 -> ends 120; q2 114 -> 124; q3 starts 120, its end unknown
    assert estimates["q1"] == 110.0 and estimates["q2"] == 114.0 and estimates["q3"] == 120.0
    assert estimates["q4"] is None  # the next free slot could be q3's, which was never measured


def test_estimates_are_null_without_measurements_when_paused_or_unplaceable() -> None:
    executors = executor_views([worker("w", ["t"])], {"w": Registration("w", [], 1)}, {"w": 1})
    running = [(task("r", "t", started_at=0.0), "w")]
    assert estimate_starts([task("q", "t")], running, executors, {}, 1.0, paused=False) == {"q": None}
    assert estimate_starts([task("q", "t")], running, executors, {"t": 1.0}, 1.0, paused=True) == {"q": None}
    assert estimate_starts([task("q", "x")], [], executors, {"x": 1.0}, 1.0, paused=False) == {"q": None}
    # a free slot needs no measurement: it starts now; a retry delay pushes it later
    free = executor_views([worker("w", ["t"])], {}, {})
    assert estimate_starts([task("q", "t", not_before=7.0)], [], free, {}, 1.0, paused=False) == {"q": 7.0}


def test_a_running_task_past_its_average_is_expected_to_end_now() -> None:
    executors = executor_views([worker("w", ["t"])], {"w": Registration("w", [], 1)}, {"w": 1})
    running = [(task("r", "t", started_at=0.0), "w")]
    assert estimate_starts([task("q", "t")], running, executors, {"t": 5.0}, 50.0, paused=False) == {
        "q": 50.0
    }
