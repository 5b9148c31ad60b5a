"""What /readyz and /status report, built from the router's and the arbiter's state, and the task
queue's own figures (``queue_status.py``).

``quarantined`` (top level) lists the tools quarantined now (``quarantine.py``), each as
``{"tool", "pool", "deaths", "since", "until", "retry_in_seconds"}`` with ``since``/``until`` in Unix time:
a dashboard reads these names."""

from __future__ import annotations

import dataclasses
import gc
import time
from typing import Any

from .router import Router
from .types import SupervisorView


def readiness(router: Router, supervisor: SupervisorView) -> tuple[bool, dict[str, Any]]:
    """``(ready, body)``: ready when every runtime with configured workers has a routable worker (a pool
    only remote nodes fill is not waited for)."""
    ready_runtimes = router.ready_pools()
    failures = router.pool_failures()
    reasons = []
    for runtime, ready in ready_runtimes.items():
        if not ready and runtime not in router.catalog.optional:
            reasons.append(failures.get(runtime) or f"no {runtime} worker is ready")
    if supervisor.stopping:
        reasons.insert(0, "the supervisor is stopping")
    body: dict[str, Any] = {"ready": not reasons, "runtimes": ready_runtimes}
    if reasons:
        body["reason"] = "; ".join(reasons)
    return not reasons, body


async def fresh_status_document(router: Router, supervisor: SupervisorView) -> dict[str, Any]:
    """``status_document`` once the task queue's figures are refreshed (``QueueStatus.refresh``: at most
    ``REFRESH_TIMEOUT`` seconds, never raises).

    Cancellation: only the wait for the queue's answer is cancelled.
    """
    if supervisor.queue_status is not None:
        await supervisor.queue_status.refresh(router)
    return status_document(router, supervisor)


def status_document(router: Router, supervisor: SupervisorView) -> dict[str, Any]:
    """The JSON of /status (and of ``ctl status``). psutil figures come from the sampler's cache (at
    most a second old) and the task queue's from ``QueueStatus`` as last refreshed (``task_queue``:
    ``None`` without a task queue); nothing here touches /proc or waits."""
    sampler = supervisor.sampler
    tools_by_runtime: dict[str, dict[str, Any]] = {}
    for tool, stats in router.stats.tools.items():
        tools_by_runtime.setdefault(stats.runtime, {})[tool] = {
            "calls": stats.count,
            "outcomes": {outcome: count for outcome, count in stats.outcomes.items() if count},
            **stats.percentiles(),
        }
    ready_pools = router.ready_pools()
    workers = []
    for worker in supervisor.arbiter.all_workers():
        link = router.link_of(worker.pid) if worker.pid is not None else None
        figures = sampler.latest.get(worker.pid, {}) if worker.pid is not None else {}
        workers.append(
            {
                "id": worker.worker_id,
                "runtime": worker.runtime,
                "pool": worker.pool,
                "pid": worker.pid,
                "state": worker.state,
                "uptime_seconds": round(worker.uptime(), 3),
                "restarts": worker.restarts,
                "last_exit": worker.last_exit,
                "cpu_affinity": figures.get("cpu_affinity"),
                "cpu_percent": figures.get("cpu_percent"),
                "rss_bytes": figures.get("rss_bytes"),
                "open_fds": figures.get("open_fds"),
                "threads": figures.get("threads"),
                "in_flight": len(link.in_flight) if link else 0,
                "sync_threads": link.threads._asdict() if link and link.threads.size else None,
                "saturated": link.saturation() if link else None,
                "calls_served": link.calls_served if link else 0,
                "calls_failed": link.calls_failed if link else 0,
                "tools": link.tool_names if link else [],
            }
        )
    own = sampler.latest.get(supervisor.pid, {})
    return {
        "supervisor": {
            "pid": supervisor.pid,
            "uptime_seconds": round(time.monotonic() - supervisor.started_at, 3),
            "state": "stopping" if supervisor.stopping else "running",
            "cpu_percent": own.get("cpu_percent"),
            "rss_bytes": own.get("rss_bytes"),
            "open_fds": own.get("open_fds"),
            "threads": own.get("threads"),
            "tools": len(router.tools()),
            "calls": router.stats.total(),
            "queued_calls": router.queued_calls,
            "mcp_posts": {
                "fast_path": supervisor.fast_path_stats.served,
                "sdk": supervisor.fast_path_stats.handed_over,
            },
            "gc": {
                "frozen_objects": gc.get_freeze_count(),
                "collections": [generation["collections"] for generation in gc.get_stats()],
                "thresholds": list(gc.get_threshold()),
            },
            "auth": {
                "refused": dataclasses.asdict(supervisor.auth_stats),
                "warning": supervisor.auth_warning,
            },
            "connections": {
                "open": supervisor.connections.open,
                "clients": supervisor.connections.clients(),
                **dataclasses.asdict(supervisor.connections.stats),
            },
        },
        "runtimes": {  # every pool, one scaled to 0 included ("workers": 0)
            pool: {
                "ready": ready_pools.get(pool, False),
                "failure": router.pool_failures().get(pool),
                "workers": sum(1 for w in supervisor.arbiter.workers.values() if w.pool == pool),
            }
            for pool in router.pools
        },
        "load_errors": router.catalog.load_errors(),
        "quarantined": router.quarantine.documents(),
        "recent_errors": router.recent_errors.entries(),
        "workers": workers,
        "remote_workers": [
            {
                "id": link.worker_id,
                "node": link.node,
                "pool": link.pool,
                "pid": link.pid,
                "state": "draining" if link.draining else "ready",
                "in_flight": len(link.in_flight),
                "calls_served": link.calls_served,
                "calls_failed": link.calls_failed,
                "tools": link.tool_names,
            }
            for link in router.remote.links()
        ],
        "tools": tools_by_runtime,
        "task_queue": None if supervisor.queue_status is None else supervisor.queue_status.document(),
    }
