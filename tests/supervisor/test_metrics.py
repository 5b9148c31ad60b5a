"""The task queue's families on /metrics (``supervisor/metrics.py``): from the last ``tasks:stats``
answer, labelled by status and origin, and without samples while that answer is stale."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest

from shared.errors import NoWorkerError
from supervisor.auth.middleware import AuthStats
from supervisor.connections import ConnectionTable
from supervisor.http_stats import HTTPStats
from supervisor.metrics import build_registry
from supervisor.quarantine import QuarantinePolicy
from supervisor.queue_status import MIN_INTERVAL, QueueStatus
from tests.supervisor.fakes import running_router
from tests.supervisor.test_queue_status import Clock, FakeRouter

pytestmark = pytest.mark.anyio

STATS = {
    "paused": True,
    "pause_reason": "maintenance",
    "tasks": {
        "queued": {"mcp": 2, "queue": 7},
        "running": {"mcp": 1, "queue": 0},
        "input_required": {"mcp": 1, "queue": 0},
    },
    "finished": {
        "completed": {"mcp": 40, "queue": 80},
        "failed": {"mcp": 1, "queue": 2},
        "cancelled": {"mcp": 0, "queue": 3},
    },
    "workflows": {"pending": 0, "running": 1},
    "expired": 12,
}


def supervisor(router: Any, queue_status: QueueStatus | None) -> Any:
    return SimpleNamespace(
        router=router,
        arbiter=SimpleNamespace(workers={}, all_workers=lambda: []),
        sampler=SimpleNamespace(latest={}),
        pid=1,
        started_at=0.0,
        stopping=False,
        fast_path_stats=SimpleNamespace(served=0, handed_over=0),
        auth_stats=AuthStats(),
        auth_warning=None,
        connections=ConnectionTable(10, 10),
        queue_status=queue_status,
    )


def scrape(router: Any, queue_status: QueueStatus | None) -> list[str]:
    registry = build_registry(supervisor(router, queue_status), HTTPStats())
    return generate_latest(registry).decode().splitlines()


async def test_the_queue_families_follow_the_last_answer() -> None:
    clock, fake = Clock(), FakeRouter(STATS)
    queue = QueueStatus(clock)
    await queue.refresh(fake)
    async with running_router(["asyncio"]) as (router, _):
        lines = scrape(router, queue)
    for sample in (
        'mcp_supervisor_tasks{origin="mcp",status="queued"} 2.0',
        'mcp_supervisor_tasks{origin="queue",status="queued"} 7.0',
        'mcp_supervisor_tasks{origin="mcp",status="input_required"} 1.0',
        'mcp_supervisor_tasks{origin="queue",status="running"} 0.0',
        'mcp_supervisor_tasks_finished_total{origin="queue",status="completed"} 80.0',
        'mcp_supervisor_tasks_finished_total{origin="mcp",status="failed"} 1.0',
        "mcp_supervisor_task_queue_paused 1.0",
        "mcp_supervisor_tasks_expired_total 12.0",
        "# TYPE mcp_supervisor_tasks gauge",
        "# TYPE mcp_supervisor_tasks_finished_total counter",
    ):
        assert sample in lines, sample
    assert sum(1 for line in lines if line.startswith("mcp_supervisor_tasks{")) == 6


async def test_a_stale_answer_has_no_samples_and_no_queue_no_families() -> None:
    clock, fake = Clock(), FakeRouter(STATS)
    queue = QueueStatus(clock)
    await queue.refresh(fake)
    fake.answer = NoWorkerError("runtime trio-queue has no ready worker")
    clock.now += MIN_INTERVAL
    await queue.refresh(fake)
    async with running_router(["asyncio"]) as (router, _):
        stale = scrape(router, queue)
        without = scrape(router, None)
    assert "# TYPE mcp_supervisor_task_queue_paused gauge" in stale
    assert not [
        line for line in stale if line.startswith(("mcp_supervisor_task_queue", "mcp_supervisor_tasks"))
    ]
    assert not [line for line in without if "mcp_supervisor_task" in line]


async def test_the_front_s_connection_figures_are_scraped() -> None:
    async with running_router(["asyncio"]) as (router, _):
        view = supervisor(router, None)
        view.connections.stats.evicted = 3
        view.connections.stats.header_timeouts = 2
        lines = generate_latest(build_registry(view, HTTPStats())).decode().splitlines()
    assert "mcp_supervisor_http_connections 0.0" in lines
    assert 'mcp_supervisor_http_connections_closed_total{reason="evicted"} 3.0' in lines
    assert 'mcp_supervisor_http_connections_closed_total{reason="header_timeout"} 2.0' in lines
    assert 'mcp_supervisor_http_connections_closed_total{reason="refused"} 0.0' in lines


async def test_issue_17_quarantined_tools_are_a_gauge_and_quarantines_a_counter_that_never_goes_down() -> (
    None
):
    async with running_router(["asyncio"], quarantine=QuarantinePolicy(deaths=1)) as (router, _):
        view = supervisor(router, None)
        lines = generate_latest(build_registry(view, HTTPStats())).decode().splitlines()
        assert "mcp_supervisor_quarantined_tools 0.0" in lines
        assert not [line for line in lines if line.startswith("mcp_supervisor_tool_quarantines_total")]
        for _ in range(2):
            router.quarantine.record_death("asyncio", ["crash"])
            lines = generate_latest(build_registry(view, HTTPStats())).decode().splitlines()
            assert "mcp_supervisor_quarantined_tools 1.0" in lines
            router.quarantine.release("crash")
        lines = generate_latest(build_registry(view, HTTPStats())).decode().splitlines()
    assert "mcp_supervisor_quarantined_tools 0.0" in lines
    assert 'mcp_supervisor_tool_quarantines_total{tool="crash"} 2.0' in lines
