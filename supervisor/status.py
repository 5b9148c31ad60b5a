"""What /readyz and /status report, built from the router's and the arbiter's state."""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

from .router import Router


def readiness(router: Router, supervisor: Any) -> tuple[bool, dict[str, Any]]:
    """``(ready, body)``: ready when every runtime with configured workers has a routable worker."""
    ready_runtimes = router.ready_runtimes()
    failures = router.runtime_failures()
    reasons = []
    for runtime, ready in ready_runtimes.items():
        if not ready:
            reasons.append(failures.get(runtime) or f"no {runtime} worker is ready")
    if supervisor.stopping:
        reasons.insert(0, "the supervisor is stopping")
    body: dict[str, Any] = {"ready": not reasons, "runtimes": ready_runtimes}
    if reasons:
        body["reason"] = "; ".join(reasons)
    return not reasons, body


def status_document(router: Router, supervisor: Any) -> dict[str, Any]:
    """The JSON of /status."""
    me = psutil.Process()
    workers = []
    for worker in supervisor.arbiter.all_workers():
        link = router.link_of(worker.pid) if worker.pid is not None else None
        workers.append(
            {
                "id": worker.worker_id,
                "runtime": worker.runtime,
                "pid": worker.pid,
                "state": worker.state,
                "uptime_seconds": round(worker.uptime(), 3),
                "restarts": worker.restarts,
                "last_exit": worker.last_exit,
                "cpu_affinity": _affinity(worker.pid),
                "in_flight": len(link.in_flight) if link else 0,
                "calls_served": link.calls_served if link else 0,
                "calls_failed": link.calls_failed if link else 0,
                "tools": [entry["name"] for entry in link.catalog] if link else [],
            }
        )
    return {
        "supervisor": {
            "pid": os.getpid(),
            "uptime_seconds": round(time.monotonic() - supervisor.started_at, 3),
            "state": "stopping" if supervisor.stopping else "running",
            "rss_bytes": me.memory_info().rss,
            "tools": len(router.tools()),
        },
        "runtimes": {
            runtime: {"ready": ready, "failure": router.runtime_failures().get(runtime)}
            for runtime, ready in router.ready_runtimes().items()
        },
        "load_errors": router.load_errors(),
        "workers": workers,
    }


def _affinity(pid: int | None) -> list[int] | None:
    if pid is None:
        return None
    try:
        return sorted(psutil.Process(pid).cpu_affinity())
    except (AttributeError, psutil.Error):
        return None
