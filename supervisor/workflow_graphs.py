"""The newest workflows with their graphs, for the ``/ui`` page: the ``tasks:workflows`` answer of the
``trio-queue`` worker (``WorkflowOperations.recent_workflows``), polled as ``entry_poll.EntryPoll`` does.

Bounded: the page shows the ``WORKFLOWS_SHOWN`` newest workflows, and the queue leaves out the graph of a
workflow of more than ``RECENT_GRAPH_STEPS`` (100) steps. However many pages are open, the queue is asked
at most once per ``MIN_INTERVAL``. The answer::

    {"workflows": [{"workflow_id", "name", "status", "step_count", "step_counts", "progress",
                    "submitted_at", "start_time", "end_time", "execution_time", "error", ...,
                    "graph": {"nodes": [{"id", "action", "status", "depends_on", "duration", ...}],
                              "edges": [{"from", "to"}], "levels": [[step id, ...], ...],
                              "critical_path": {"steps", "duration", "unknown_durations"}} | None}],
     "total_count": n}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .entry_poll import EntryPoll

ENTRY = "workflows"
WORKFLOWS_REF = f"tasks:{ENTRY}"
"""The entry's reference; its calls are not counted (``stats.UNCOUNTED``)."""
WORKFLOWS_SHOWN = 8
"""How many of the newest workflows the page draws."""
REFRESH_TIMEOUT = 3.0
"""Seconds one ``tasks:workflows`` call may take (it reads the database)."""
MIN_INTERVAL = 1.0
"""The queue is asked at most this often, whatever the number of pages polling."""


class RecentWorkflows(EntryPoll):
    """The last ``tasks:workflows`` answer; ``refresh(router)`` asks again, ``document()`` is what
    ``GET /ui/workflows`` answers. ``clock`` is the monotonic clock (a test passes its own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        arguments = {"limit": WORKFLOWS_SHOWN}
        super().__init__(ENTRY, arguments, timeout=REFRESH_TIMEOUT, min_interval=MIN_INTERVAL, clock=clock)

    def document(self) -> dict[str, Any]:
        """``workflows`` and ``total_count`` of the last answer (empty and 0 before one), ``as_of`` (its
        age in seconds, ``None`` before one) and ``error`` (why the last refresh failed, else ``None``)."""
        snapshot = self.snapshot or {}
        age = self.age()
        return {
            "workflows": snapshot.get("workflows") or [],
            "total_count": snapshot.get("total_count") or 0,
            "as_of": None if age is None else round(age, 3),
            "error": self.error,
        }
