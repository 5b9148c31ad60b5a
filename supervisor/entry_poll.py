"""``EntryPoll``: the last answer of an internal entry of the task queue that the supervisor polls.

The supervisor asks the ``trio-queue`` worker for figures it shows, through the router like any call:
``tasks:stats`` for /status, /metrics and ``top`` (``queue_status.QueueStatus``), ``tasks:workflows``
for the ``/ui`` page's workflow graphs (``dashboard.py``). Each poll keeps the answer with the time it
came. It is cheap to ask often: a refresh within ``min_interval`` of the previous one asks nothing, and
refreshes asked for while one is under way share its call (several pages or scrapes at once cost one
call). It never raises: an error, a timeout or no queue worker is kept as ``error`` and the previous
answer stays, marked ``stale``, with its age.

These polls are not counted as calls (``stats.UNCOUNTED``): nobody made them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shared.errors import UnknownToolError

logger = logging.getLogger("mcp_supervisor.queue_status")

KIND = "tasks"
"""The kind of the entries polled: the task queue's internal entries."""
NO_QUEUE = "no task queue worker is serving"


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


class EntryPoll:
    """The last answer of the entry ``tasks:<key>`` called with ``arguments`` (``snapshot``), when it
    came (``taken_at``, monotonic) and the error of the last refresh, if it failed (``error``).

    Options: ``timeout``, the seconds one call may take, waiting for the worker included;
    ``min_interval``, a refresh asked for within this many seconds of the previous one's start asks
    nothing; ``clock``, the monotonic clock (a test passes its own).
    """

    def __init__(
        self,
        key: str,
        arguments: dict[str, Any],
        *,
        timeout: float,
        min_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.ref = f"{KIND}:{key}"
        self.arguments = arguments
        self.timeout = timeout
        self.min_interval = min_interval
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
        """Ask the queue again, unless that was asked less than ``min_interval`` ago; join the refresh
        under way if there is one. Returns once the answer is as fresh as it will get.

        Never raises: a failure of the call (no queue worker, a timeout after ``timeout``, an error
        answer) is kept in ``error``. While no queue worker has announced the entry (at start, or
        ``task_queue`` turned off by a reload) nothing is asked and nothing is waited for.

        Cancellation: only this caller's wait is cancelled; the shared call goes on for the others.
        """
        running = self._running
        if running is None:
            now = self._clock()
            if self._asked_at is not None and now - self._asked_at < self.min_interval:
                return
            self._asked_at = now
            running = self._running = asyncio.get_running_loop().create_task(self._ask(router))
        await asyncio.shield(running)

    async def _ask(self, router: EntryCaller) -> None:
        try:
            if self.ref not in router.catalog.pool_of:
                raise UnknownToolError(f"unknown {KIND} {self.key!r}")
            async with asyncio.timeout(self.timeout):
                answer = await router.call(self.key, dict(self.arguments), timeout=self.timeout, kind=KIND)
            if not isinstance(answer, dict):
                raise TypeError(f"{self.ref} answered a {type(answer).__name__}, not an object")
        except TimeoutError:
            self.error = f"the task queue did not answer within {self.timeout:g} s"
        except UnknownToolError:  # no queue worker has announced its entries (yet)
            self.error = NO_QUEUE
        except Exception as exc:  # never raise: keep it for the page
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.debug("%s failed", self.ref, exc_info=True)
        else:
            self.snapshot, self.taken_at, self.error = answer, self._clock(), None
        finally:
            self._running = None
