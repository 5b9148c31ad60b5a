"""Admission: which worker takes a call, and whether the call may start now.

A call of a tool goes to the routable worker of the tool's pool with the least load (its calls in flight,
plus the threads that calls cancelled but still running hold: ``WorkerLink.held_threads``), a worker whose
pool of sync-tool threads is full (``WorkerLink.saturated``) only when no other has room, when that
worker's load is under ``max_in_flight`` and the tool runs fewer than its ``max_concurrency``
calls (over every worker). Otherwise the call waits, until its deadline, for room or for a worker of the
pool to become ready. At most ``max_queued`` calls wait for room at once, and while any call waits a new
one waits behind it instead of overtaking it.

Both limits are read at each choice, so a reload changes them for the calls that start afterwards. Not
thread-safe: used from the supervisor's loop only.
"""

from __future__ import annotations

import asyncio
import time

from shared.errors import NoWorkerError, ServerBusyError
from shared.protocol import Threads

from .catalog import Catalog
from .links import WorkerLink

SATURATED = 1 << 30
"""Added to the load of a saturated worker when choosing: any other worker with room goes first."""

WORKER_READY_TIMEOUT = 10.0
"""Longest a call waits for a worker of its pool to become ready (a restart in progress)."""


class Admission:
    """The routable workers of each pool of ``catalog`` and the calls running or waiting on them.

    The router tells it which workers are routable (``add``, ``remove``) and which calls end
    (``release``); ``link.in_flight`` (kept by the router) is each worker's load.
    """

    def __init__(self, catalog: Catalog, *, max_in_flight: int, max_queued: int) -> None:
        self.max_in_flight = max_in_flight
        """Most calls one worker holds at once (``max_in_flight_per_worker``)."""
        self.max_queued = max_queued
        """Most calls waiting for room at once (``max_queued_calls``)."""
        self._catalog = catalog
        self._routable: dict[str, list[WorkerLink]] = {pool: [] for pool in catalog.pools}
        self._tool_in_flight: dict[str, int] = {}
        self._queued = 0
        self._waiting_for_worker: dict[str, set[asyncio.Future[None]]] = {
            pool: set() for pool in catalog.pools
        }
        self._waiting_for_room: set[asyncio.Future[None]] = set()

    # -- the routable workers ----------------------------------------------------------------------

    def serves(self, pool: str) -> bool:
        return pool in self._routable

    def add(self, link: WorkerLink) -> None:
        """Route calls to ``link`` from now on (a worker became ready or was promoted)."""
        routable = self._routable[link.pool]
        if link not in routable:
            routable.append(link)
        _wake(self._waiting_for_worker[link.pool])

    def remove(self, link: WorkerLink) -> None:
        """Route no new call to ``link`` (drained, silent or gone); a no-op for one not routable."""
        routable = self._routable.get(link.pool)
        if routable is not None and link in routable:
            routable.remove(link)

    def wake(self, pool: str) -> None:
        """Wake the calls waiting for a worker of ``pool`` (it was marked failed: they fail fast)."""
        _wake(self._waiting_for_worker[pool])

    def ready_pools(self) -> dict[str, bool]:
        """Pool → whether a worker of it is routable, for the pools meant to run, in configuration order."""
        return {pool: bool(self._routable[pool]) for pool in self._catalog.configured}

    @property
    def queued(self) -> int:
        """Calls waiting for room on a worker now."""
        return self._queued

    # -- choosing a worker -------------------------------------------------------------------------

    def take(self, pool: str, tool: str) -> WorkerLink | None:
        """``admit`` without waiting: the least-loaded routable worker of ``pool`` with room for a call of
        ``tool``, the call counted against the tool's limit; or None (no worker is ready, none has room,
        or calls are already waiting for room: those go first). ``release(tool)`` when the call ends."""
        if self._queued or pool in self._catalog.failures or not self._tool_has_room(tool):
            return None
        link = self._open_link(pool)
        if link is not None:
            self._tool_in_flight[tool] = self._tool_in_flight.get(tool, 0) + 1
        return link

    async def admit(self, pool: str, tool: str, deadline: float) -> WorkerLink:
        """The least-loaded routable worker of ``pool`` with room for one more call of ``tool``, the call
        counted against the tool's limit (``release(tool)`` when it ends).

        Waits, until ``deadline`` (``time.monotonic()``), for a worker to become ready (at most
        ``WORKER_READY_TIMEOUT``) or for room to free up.

        Raises:
            NoWorkerError: the pool is failed, or no worker of it became ready in time.
            ServerBusyError: ``max_queued`` calls are waiting already, or no room freed up before the
                deadline.

        Cancellation: the call stops waiting and leaves the queue.
        """
        queued = False
        try:
            while True:
                failure = self._catalog.failures.get(pool)
                if failure is not None:
                    raise NoWorkerError(f"runtime {pool} is unavailable: {failure}")
                if self._routable[pool]:
                    link = self._open_link(pool)
                    tool_has_room = self._tool_has_room(tool)
                    if link is not None and tool_has_room:
                        self._tool_in_flight[tool] = self._tool_in_flight.get(tool, 0) + 1
                        return link
                    if not queued:
                        if self._queued >= self.max_queued:
                            raise ServerBusyError(self._busy_reason(pool, tool, tool_has_room))
                        self._queued += 1
                        queued = True
                    timeout = deadline - time.monotonic()
                    if timeout <= 0 or not await _woken(self._waiting_for_room, timeout):
                        raise ServerBusyError(self._busy_reason(pool, tool, tool_has_room))
                else:
                    timeout = min(deadline - time.monotonic(), WORKER_READY_TIMEOUT)
                    if timeout <= 0:
                        raise NoWorkerError(f"no {pool} worker is ready")
                    if not await _woken(self._waiting_for_worker[pool], timeout):
                        raise NoWorkerError(
                            f"no {pool} worker became ready within {WORKER_READY_TIMEOUT:g} s"
                        )
        finally:
            if queued:
                self._queued -= 1

    def threads_changed(self, link: WorkerLink, threads: Threads) -> None:
        """``link``'s worker reported its sync-tool threads (THREADS): its load may have fallen, so a
        waiting call tries again."""
        link.set_threads(threads)
        if self._waiting_for_room:
            _wake(self._waiting_for_room)

    def release(self, tool: str) -> None:
        """A call of ``tool`` that ``take`` or ``admit`` counted has ended: let a waiting call try again."""
        self._tool_in_flight[tool] -= 1
        if self._waiting_for_room:
            _wake(self._waiting_for_room)

    # -- internals ---------------------------------------------------------------------------------

    def _open_link(self, pool: str) -> WorkerLink | None:
        """The routable worker of ``pool`` with the least load, a saturated one last, if one has room."""
        best: WorkerLink | None = None
        best_rank = 0
        for link in self._routable[pool]:
            load = len(link.in_flight) + link.held_threads
            if load < self.max_in_flight:
                rank = load + SATURATED if link.saturated else load
                if best is None or rank < best_rank:
                    best, best_rank = link, rank
        return best

    def _tool_has_room(self, tool: str) -> bool:
        """Whether ``tool`` runs fewer calls than its ``max_concurrency`` (if it has one)."""
        limit = self._catalog.tool_limits.get(tool)
        return limit is None or self._tool_in_flight.get(tool, 0) < limit

    def _busy_reason(self, pool: str, tool: str, tool_has_room: bool) -> str:
        if not tool_has_room:
            return (
                f"server busy: tool {tool!r} allows {self._catalog.tool_limits[tool]} concurrent calls "
                f"(max_concurrency) and {self._queued} calls are waiting; try again later"
            )
        return (
            f"server busy: every {pool} worker has {self.max_in_flight} calls in flight "
            f"and {self._queued} calls are waiting; try again later"
        )


async def _woken(waiters: set[asyncio.Future[None]], timeout: float) -> bool:
    """Wait in ``waiters`` until ``_wake`` (True) or for ``timeout`` seconds (False).

    The waiter is in the set before this yields, so a wake-up cannot fall between the caller's check of
    the state and its wait (``Event.set`` then ``clear`` can: on Python 3.11 ``wait_for`` starts
    ``Event.wait`` in a task of its own, one loop iteration later).
    """
    waiter = asyncio.get_running_loop().create_future()
    waiters.add(waiter)
    try:
        await asyncio.wait_for(waiter, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        waiters.discard(waiter)


def _wake(waiters: set[asyncio.Future[None]]) -> None:
    """Wake every call waiting in ``waiters`` now; the next ones wait for the next wake-up."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()
