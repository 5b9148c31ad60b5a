"""Unit tests of supervisor/status.py on a router over a fake socket: what /status and /readyz report."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from supervisor.auth.middleware import AuthStats
from supervisor.connections import ConnectionTable
from supervisor.quarantine import QuarantinePolicy
from supervisor.queue_status import QueueStatus
from supervisor.status import fresh_status_document, readiness, status_document
from tests.supervisor.fakes import WAIT, connect, running_router
from tests.supervisor.test_queue_status import STATS, Clock, FakeRouter

pytestmark = pytest.mark.anyio


def worker(worker_id: str, pid: int, runtime: str, pool: str) -> SimpleNamespace:
    return SimpleNamespace(
        worker_id=worker_id,
        runtime=runtime,
        pool=pool,
        pid=pid,
        state="ready",
        uptime=lambda: 1.0,
        restarts=0,
        last_exit=None,
    )


def supervisor(*workers: SimpleNamespace, queue_status: QueueStatus | None = None) -> Any:
    return SimpleNamespace(
        sampler=SimpleNamespace(latest={}),
        arbiter=SimpleNamespace(
            all_workers=lambda: list(workers), workers={worker.worker_id: worker for worker in workers}
        ),
        pid=1,
        started_at=0.0,
        stopping=False,
        fast_path_stats=SimpleNamespace(served=0, handed_over=0),
        auth_stats=AuthStats(),
        auth_warning=None,
        connections=ConnectionTable(10, 10),
        queue_status=queue_status,
    )


async def test_status_shows_the_calls_each_worker_holds() -> None:
    """Part of what tests/integration/test_faults.py::test_calls_go_to_the_least_loaded_worker checked:
    the busy worker is the one /status shows with a call in flight."""
    async with running_router(["asyncio"]) as (router, socket):
        busy = connect(router, socket, "asyncio-0", 11, "asyncio", "sleep")
        connect(router, socket, "asyncio-1", 12, "asyncio", "sleep")
        call = asyncio.create_task(router.call("sleep", {}, timeout=30))
        held = await busy.next_call()
        workers = [
            worker("asyncio-0", 11, "asyncio", "asyncio"),
            worker("asyncio-1", 12, "asyncio", "asyncio"),
        ]

        document = status_document(router, supervisor(*workers))
        assert [(w["id"], w["runtime"], w["pool"], w["in_flight"]) for w in document["workers"]] == [
            ("asyncio-0", "asyncio", "asyncio", 1),
            ("asyncio-1", "asyncio", "asyncio", 0),
        ]
        assert document["runtimes"] == {"asyncio": {"ready": True, "failure": None, "workers": 2}}
        busy.answer(held)
        await asyncio.wait_for(call, WAIT)
        document = status_document(router, supervisor(*workers))
        assert [w["in_flight"] for w in document["workers"]] == [0, 0]
        assert [w["calls_served"] for w in document["workers"]] == [1, 0]
        assert document["tools"]["asyncio"]["sleep"]["calls"] == 1


async def test_readiness_names_each_pool_without_a_ready_worker() -> None:
    async with running_router(["asyncio", "trio"]) as (router, socket):
        connect(router, socket, "asyncio-0", 11, "asyncio", "sleep")
        router.set_pool_failed("trio", "every trio worker is failing: exit code 70")

        ready, body = readiness(router, supervisor())
        assert not ready
        assert body == {
            "ready": False,
            "runtimes": {"asyncio": True, "trio": False},
            "reason": "every trio worker is failing: exit code 70",
        }
        connect(router, socket, "trio-0", 12, "trio", "trio_sleep")
        assert readiness(router, supervisor()) == (
            True,
            {"ready": True, "runtimes": {"asyncio": True, "trio": True}},
        )


async def test_status_shows_the_task_queue_as_it_last_answered_and_null_without_one() -> None:
    async with running_router(["asyncio"]) as (router, _):
        assert status_document(router, supervisor())["task_queue"] is None
        clock = Clock()
        queue = QueueStatus(clock)
        await queue.refresh(FakeRouter())
        clock.now += 0.25
        assert status_document(router, supervisor(queue_status=queue))["task_queue"] == {
            **STATS,
            "as_of": 0.25,
            "error": None,
        }


async def test_the_fresh_document_asks_the_queue_first_and_shows_why_it_could_not() -> None:
    async with running_router(["asyncio"]) as (router, _):  # no queue worker: no tasks:stats entry
        document = await fresh_status_document(router, supervisor(queue_status=QueueStatus()))
        assert document["task_queue"]["error"] == "no task queue worker is serving"
        assert document["task_queue"]["tasks"] is None and document["task_queue"]["as_of"] is None
        assert (await fresh_status_document(router, supervisor()))["task_queue"] is None


async def test_issue_17_status_lists_the_quarantined_tools_under_the_names_a_dashboard_reads() -> None:
    async with running_router(["asyncio"], quarantine=QuarantinePolicy(deaths=1, seconds=300.0)) as (
        router,
        _,
    ):
        assert status_document(router, supervisor())["quarantined"] == []
        started = time.time()
        router.quarantine.record_death("asyncio", ["crash"])
        [entry] = status_document(router, supervisor())["quarantined"]
        assert set(entry) == {"tool", "pool", "deaths", "since", "until", "retry_in_seconds"}
        assert (entry["tool"], entry["pool"], entry["deaths"]) == ("crash", "asyncio", 1)
        assert started - 0.01 <= entry["since"] <= time.time() + 0.01
        assert entry["until"] == pytest.approx(entry["since"] + 300.0)
        assert 299.0 < entry["retry_in_seconds"] <= 300.0
        router.quarantine.release("crash")
        assert status_document(router, supervisor())["quarantined"] == []
