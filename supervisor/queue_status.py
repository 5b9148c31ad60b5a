"""What the task queue last said about itself: the ``tasks:stats`` answer of the ``trio-queue`` worker,
kept for ``/status``, ``ctl status`` (and so ``top``) and ``/metrics``.

``QueueStatus.refresh`` asks the queue worker through the router (``tasks:stats``, which answers from the
engine's memory) as ``entry_poll.EntryPoll`` does: at most once per ``MIN_INTERVAL``, one call shared by
the refreshes asked for meanwhile, never raising (a failure is kept as ``error``, the last answer stays,
``stale``).

The answer (``trio_worker/taskqueue/queue_ops.py``, ``live_stats``)::

    {"paused": bool, "pause_reason": str | None,
     "tasks": {"queued" | "running" | "input_required": {"mcp": n, "queue": n}},
     "finished": {"completed" | "failed" | "cancelled": {"mcp": n, "queue": n}},   # since it started
     "workflows": {"pending": n, "running": n}, "expired": n}                      # expired: since start

A supervisor without a task queue (``task_queue = false``) has no ``QueueStatus``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .entry_poll import EntryPoll

REFRESH_TIMEOUT = 1.0
"""Seconds one ``tasks:stats`` call may take, waiting for the worker included."""
MIN_INTERVAL = 0.5
"""A refresh asked for within this many seconds of the previous one's start asks nothing."""
ENTRY = "stats"
"""The key of the entry."""
STATS_REF = f"tasks:{ENTRY}"
"""Its reference in the catalog. Its calls are left out of the call statistics (``stats.UNCOUNTED``):
nobody made them, and ``top`` would see its own refreshes as calls."""
STATUS_FIELDS = ("paused", "pause_reason", "tasks", "finished", "workflows", "expired")
"""The fields of the answer that ``/status`` shows as they are."""


class QueueStatus(EntryPoll):
    """The last ``tasks:stats`` answer (``snapshot``), when it came (``taken_at``, monotonic) and the
    error of the last refresh, if it failed (``error``); ``refresh(router)`` asks again.

    ``clock`` is the monotonic clock (a test passes its own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ENTRY, {}, timeout=REFRESH_TIMEOUT, min_interval=MIN_INTERVAL, clock=clock)

    def document(self) -> dict[str, Any]:
        """The ``task_queue`` block of ``/status``: the answer's fields (``None`` before the first one),
        ``as_of`` (its age in seconds) and ``error`` (why the last refresh failed, else ``None``)."""
        snapshot = self.snapshot or {}
        age = self.age()
        return {
            **{field: snapshot.get(field) for field in STATUS_FIELDS},
            "as_of": None if age is None else round(age, 3),
            "error": self.error,
        }
