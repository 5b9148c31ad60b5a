"""What the task queue last said about itself: the ``tasks:stats`` answer of the ``trio-queue`` worker,
kept for ``/status``, ``ctl status`` (and so ``top``) and ``/metrics``.

``QueueStatus.refresh`` asks the queue worker through the router (``tasks:stats``, which answers from the
engine's memory) and keeps the answer with the time it came. It is cheap to ask often: a refresh within
``MIN_INTERVAL`` of the previous one asks nothing, and refreshes asked for while one is under way share
its call (several scrapes at once cost one call). It never raises: an error, a timeout or no queue worker
is kept as ``error`` and the previous answer stays, marked ``stale``, with its age.

The answer (``trio_worker/taskqueue/queue_ops.py``, ``live_stats``)::

    {"paused": bool, "pause_reason": str | None,
     "tasks": {"queued" | "running" | "input_required": {"mcp": n, "queue": n}},
     "finished": {"completed" | "failed" | "cancelled": {"mcp": n, "queue": n}},   # since it started
     "workflows": {"pending": n, "running": n}, "expired": n}                      # expired: since start

A supervisor without a task queue (``task_queue = false``) has no ``QueueStatus``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shared.errors import UnknownToolError

logger = logging.getLogger("mcp_supervisor.queue_status")

REFRESH_TIMEOUT = 1.0
"""Seconds one ``tasks:stats`` call may take, waiting for the worker included."""
MIN_INTERVAL = 0.5
"""A refresh asked for within this many seconds of the previous one's start asks nothing."""
ENTRY = "stats"
"""The key of the entry."""
STATS_REF = f"tasks:{ENTRY}"
"""Its reference in the catalog. Its calls are left out of the call statistics (``stats.UNCOUNTED``):
nobody made them, and ``top`` would see its own refreshes as calls."""
NO_QUEUE = "no task queue worker is serving"
STATUS_FIELDS = ("paused", "pause_reason", "tasks", "finished", "workflows", "expired")
"""The fields of the answer that ``/status`` shows as they are."""


class EntryCatalog(Protocol):
    @property
    def pool_of(self) -> Mapping[str, str]:
        """Entry ref -> the pool serving it."""
        ...


class EntryCaller(Protocol):
    """What is used of the router: its catalog and ``Router.call``."""

    @property
    def catalog(self) -> EntryCatalog: ...

    async def call(
        self, tool: str, arguments: dict[str, Any] | None, *, timeout: float, kind: str = "tool"
    ) -> dict[str, Any]: ...


class QueueStatus:
    """The last ``tasks:stats`` answer (``snapshot``), when it came (``taken_at``, monotonic) and the
    error of the last refresh, if it failed (``error``).

    ``clock`` is the monotonic clock (a test passes its own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.snapshot: dict[str, Any] | None = None
        self.taken_at: float | None = None
        self.error: str | None = None
        self._clock = clock
        self._asked_at: float | None = None
        self._running: asyncio.Task[None] | None = None

    @property
    def stale(self) -> bool:
        """True when there is no answer yet or the last refresh failed (``snapshot`` is older)."""
        return self.snapshot is None or self.error is not None

    def age(self) -> float | None:
        """Seconds since ``snapshot`` came, or ``None`` without one."""
        return None if self.taken_at is None else max(0.0, self._clock() - self.taken_at)

    async def refresh(self, router: EntryCaller) -> None:
        """Ask the queue for its figures, unless that was asked less than ``MIN_INTERVAL`` ago; join the
        refresh under way if there is one. Returns once the figures are as fresh as they will get.

        Never raises: a failure of the call (no queue worker, a timeout after ``REFRESH_TIMEOUT``, an
        error answer) is kept in ``error``. While no queue worker has announced ``tasks:stats`` (at start,
        or ``task_queue`` turned off by a reload) nothing is asked and nothing is waited for.

        Cancellation: only this caller's wait is cancelled; the shared call goes on for the others.
        """
        running = self._running
        if running is None:
            now = self._clock()
            if self._asked_at is not None and now - self._asked_at < MIN_INTERVAL:
                return
            self._asked_at = now
            running = self._running = asyncio.get_running_loop().create_task(self._ask(router))
        await asyncio.shield(running)

    async def _ask(self, router: EntryCaller) -> None:
        try:
            if STATS_REF not in router.catalog.pool_of:
                raise UnknownToolError(f"unknown tasks {ENTRY!r}")
            async with asyncio.timeout(REFRESH_TIMEOUT):
                answer = await router.call(ENTRY, {}, timeout=REFRESH_TIMEOUT, kind="tasks")
            if not isinstance(answer, dict):
                raise TypeError(f"tasks:stats answered a {type(answer).__name__}, not an object")
        except TimeoutError:
            self.error = f"the task queue did not answer within {REFRESH_TIMEOUT:g} s"
        except UnknownToolError:  # no queue worker has announced its entries (yet)
            self.error = NO_QUEUE
        except Exception as exc:  # never raise: keep it for /status
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.debug("task queue status: tasks:stats failed", exc_info=True)
        else:
            self.snapshot, self.taken_at, self.error = answer, self._clock(), None
        finally:
            self._running = None

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
