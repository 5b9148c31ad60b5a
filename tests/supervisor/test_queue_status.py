"""``QueueStatus`` on a fake router: one ``tasks:stats`` call however many ask at once, at most one per
``MIN_INTERVAL``, and every failure kept as the error, never raised."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from shared.errors import CallTimeoutError, NoWorkerError, UnknownToolError
from supervisor import queue_status
from supervisor.queue_status import MIN_INTERVAL, QueueStatus

pytestmark = pytest.mark.anyio

STATS = {
    "paused": False,
    "pause_reason": None,
    "tasks": {"queued": {"mcp": 1, "queue": 2}},
    "finished": {"completed": {"mcp": 3, "queue": 4}},
    "workflows": {"pending": 0, "running": 1},
    "expired": 5,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeRouter:
    """Answers ``tasks:stats`` with ``answer`` (raised when it is an exception), after ``gate`` is set."""

    def __init__(self, answer: Any = STATS) -> None:
        self.catalog = SimpleNamespace(pool_of={"tasks:stats": "trio-queue"})
        self.answer = answer
        self.calls: list[tuple[str, str, float]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.called = asyncio.Event()

    async def call(
        self, tool: str, arguments: dict[str, Any] | None, *, timeout: float, kind: str = "tool"
    ) -> dict[str, Any]:
        self.calls.append((kind, tool, timeout))
        self.called.set()
        await self.gate.wait()
        if isinstance(self.answer, BaseException):
            raise self.answer
        return dict(self.answer) if isinstance(self.answer, dict) else self.answer  # type: ignore[no-any-return]


async def test_a_refresh_asks_tasks_stats_and_keeps_the_answer_with_its_age() -> None:
    clock, router = Clock(), FakeRouter()
    status = QueueStatus(clock)
    assert status.stale and status.document() == {
        "paused": None,
        "pause_reason": None,
        "tasks": None,
        "finished": None,
        "workflows": None,
        "expired": None,
        "as_of": None,
        "error": None,
    }
    await status.refresh(router)
    assert router.calls == [("tasks", "stats", 1.0)]
    assert status.snapshot == STATS and not status.stale
    clock.now += 2.5
    assert status.document() == {**STATS, "as_of": 2.5, "error": None}


async def test_refreshes_at_once_share_one_call_and_a_close_one_asks_nothing() -> None:
    clock, router = Clock(), FakeRouter()
    router.gate.clear()
    status = QueueStatus(clock)
    waiting = [asyncio.create_task(status.refresh(router)) for _ in range(5)]
    await asyncio.wait_for(router.called.wait(), 5.0)  # the five started before the call did
    assert len(router.calls) == 1
    assert not any(task.done() for task in waiting)  # they all wait for the one answer
    router.gate.set()
    await asyncio.gather(*waiting)
    assert status.snapshot == STATS
    clock.now += MIN_INTERVAL / 2
    await status.refresh(router)
    assert len(router.calls) == 1  # too soon: the answer is fresh enough
    clock.now += MIN_INTERVAL / 2
    await status.refresh(router)
    assert len(router.calls) == 2


async def test_a_cancelled_waiter_does_not_cancel_the_shared_call() -> None:
    router = FakeRouter()
    router.gate.clear()
    status = QueueStatus(Clock())
    first = asyncio.create_task(status.refresh(router))
    second = asyncio.create_task(status.refresh(router))
    await asyncio.wait_for(router.called.wait(), 5.0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    router.gate.set()
    await second
    assert status.snapshot == STATS and len(router.calls) == 1


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (UnknownToolError("unknown tasks 'stats'"), "no task queue worker is serving"),
        (NoWorkerError("runtime trio-queue has no ready worker"), "runtime trio-queue has no ready worker"),
        (
            CallTimeoutError("tasks 'stats' did not answer within 1 s"),
            "tasks 'stats' did not answer within 1 s",
        ),
        (RuntimeError("boom\ntraceback"), "boom"),
        (RuntimeError(), "RuntimeError"),
    ],
)
async def test_a_failure_is_kept_as_the_error_and_the_last_answer_stays_stale(
    failure: Exception, error: str
) -> None:
    clock, router = Clock(), FakeRouter()
    status = QueueStatus(clock)
    await status.refresh(router)
    router.answer = failure
    clock.now += MIN_INTERVAL
    await status.refresh(router)  # does not raise
    assert status.error == error and status.stale
    assert status.snapshot == STATS  # the last answer, with its growing age
    clock.now += 1.0
    document = status.document()
    assert document["error"] == error and document["as_of"] == MIN_INTERVAL + 1.0
    router.answer = STATS
    clock.now += MIN_INTERVAL
    await status.refresh(router)
    assert status.error is None and not status.stale and status.document()["as_of"] == 0.0


async def test_without_the_entry_in_the_catalog_nothing_is_asked() -> None:
    router = FakeRouter()
    router.catalog.pool_of = {"tasks:get": "trio-queue"}
    status = QueueStatus(Clock())
    await status.refresh(router)
    assert router.calls == [] and status.error == "no task queue worker is serving"


async def test_an_answer_that_is_not_an_object_is_an_error() -> None:
    status = QueueStatus(Clock())
    await status.refresh(FakeRouter(answer=[1, 2]))
    assert status.error == "tasks:stats answered a list, not an object"
    assert status.snapshot is None


async def test_a_queue_that_does_not_answer_in_time_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_status, "REFRESH_TIMEOUT", 0.01)
    router = FakeRouter()
    router.gate.clear()  # never answers
    status = QueueStatus(Clock())
    await asyncio.wait_for(status.refresh(router), 5.0)
    assert status.error == "the task queue did not answer within 0.01 s"
    assert status.snapshot is None
