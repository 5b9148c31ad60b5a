"""Warm spares: a worker that dies or hangs is replaced by a process that is already READY.

A restart is a new interpreter importing every tool module (0.4-1.4 s). So each pool but the task
queue's (a singleton: it owns the database lock) keeps ``spare_workers`` (default 1) more processes of
its own: started like a replacement candidate, with the pool's tool modules and its first slot's core,
connected and READY but *held* (the router routes them nothing and does not take their catalog). When a
worker of the pool dies, its slot adopts a spare (``take``, then ``adopt_spare``: the router promotes
it) and the keeper of that spare starts the next one in the background.

Guarantees:

- a spare never serves a call before it is adopted, and a spare that was adopted never served before:
  every incarnation starts with the tool modules' fresh state;
- a spare is started only once a worker of its pool has been READY (a pool whose modules kill their
  importer gets none), and after that is always being kept: one that dies is started again after the
  usual backoff, which never counts against the pool's flapping;
- ``retire`` and ``close`` stop spares like workers, by pid: STOP, then SIGKILL; one still starting
  (nothing to finish) is killed at once.

Cancellation: ``retire`` and ``close`` end the keepers they stop even when cancelled themselves.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import psutil

from .links import WorkerLink
from .process import WorkerProcess, describe_exit
from .restart import RestartPolicy, RestartTracker

logger = logging.getLogger("mcp_supervisor.arbiter")

Stopper = Callable[[list[WorkerProcess], float, str], Awaitable[bool]]
"""``Arbiter._drain_and_stop``: route nothing more, STOP, SIGKILL after ``STOP_WAIT``, end their tasks."""


class SpareRouter(Protocol):
    """What is asked of the router for spares."""

    def expect(self, worker_id: str, pid: int, *, held: bool = False) -> None: ...
    def promote(self, pid: int) -> None: ...
    def worker_gone(self, pid: int, reason: str, *, death: bool = False) -> bool: ...
    def link_of(self, pid: int) -> WorkerLink | None: ...


class Spares:
    """The spares of every pool, each kept alive by a task of its own (its *keeper*).

    ``spawn``, ``clock`` and ``sleep`` are the arbiter's seams (see ``Arbiter``); ``policy()`` gives the
    restart policy in force; ``stop`` is how spares are drained and stopped.
    """

    def __init__(
        self,
        router: SpareRouter,
        *,
        spawn: Callable[[WorkerProcess], Awaitable[int]],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        policy: Callable[[], RestartPolicy],
        stop: Stopper,
    ) -> None:
        self._router = router
        self._spawn = spawn
        self._clock = clock
        self._sleep = sleep
        self._policy = policy
        self._stop = stop
        self._plan: dict[str, WorkerProcess] = {}
        """What each spare is started from, by spare id (``asyncio-spare-0``)."""
        self._current: dict[str, WorkerProcess] = {}
        """The spare process of each spare id now, starting, ready or resting."""
        self._keepers: dict[str, asyncio.Task[None]] = {}
        self._taken: dict[str, asyncio.Future[None]] = {}
        self._pool_ready: dict[str, asyncio.Event] = {}
        self._closed = False

    def workers(self) -> list[WorkerProcess]:
        """Every spare now (for /status and the sampler), by spare id."""
        return [self._current[spare_id] for spare_id in sorted(self._current)]

    def pool_ready(self, pool: str) -> None:
        """A worker of ``pool`` is READY: its spares may start (the first time)."""
        self._ready_event(pool).set()

    def start(self, plan: dict[str, WorkerProcess]) -> None:
        """Keep a spare for each entry of ``plan`` (by spare id) that has no keeper yet; returns at once."""
        if self._closed:
            return
        for spare_id, template in plan.items():
            self._plan[spare_id] = template
            if spare_id not in self._keepers:
                self._keepers[spare_id] = asyncio.create_task(self._keep(template))

    def peek(self, pool: str) -> WorkerProcess | None:
        """The READY spare of ``pool`` that ``take`` would give now, left in place; or None."""
        for _, spare in sorted(self._current.items()):
            if spare.pool == pool and spare.state == "spare" and spare.pid is not None and not spare.retiring:
                return spare
        return None

    def take(self, pool: str) -> WorkerProcess | None:
        """A READY spare of ``pool``, no longer a spare (its keeper starts the next one); or None."""
        spare = self.peek(pool)
        if spare is not None:
            spare_id = next(key for key, value in self._current.items() if value is spare)
            del self._current[spare_id]
            taken = self._taken.pop(spare_id, None)
            if taken is not None and not taken.done():
                taken.set_result(None)
            spare.spare = False
        return spare

    async def retire(self, which: Callable[[WorkerProcess], bool], reason: str) -> None:
        """Stop the spares whose plan entry ``which`` selects, and forget their plan entries."""
        ids = [spare_id for spare_id, template in self._plan.items() if which(template)]
        for spare_id in ids:
            del self._plan[spare_id]
        keepers = [self._keepers.pop(spare_id) for spare_id in ids if spare_id in self._keepers]
        spares = [self._current.pop(spare_id) for spare_id in ids if spare_id in self._current]
        running = []
        for spare in spares:
            spare.retiring = True
            if spare.pid is None:  # resting or being spawned: no process to stop (a spawn cancelled
                if spare.task is not None:  # mid-way kills its child)
                    spare.task.cancel()
            else:
                if spare.state != "spare":
                    spare.kill()  # still importing: nothing to finish, no STOP would be read
                running.append(spare)
        try:
            if running:
                await self._stop(running, 0, reason)
        finally:
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            for spare in spares:
                spare.state = "stopped"

    async def close(self, reason: str) -> None:
        """Stop every spare and start no more; idempotent."""
        self._closed = True
        await self.retire(lambda template: True, reason)

    # -- one spare ---------------------------------------------------------------------------------

    def _ready_event(self, pool: str) -> asyncio.Event:
        return self._pool_ready.setdefault(pool, asyncio.Event())

    async def _keep(self, template: WorkerProcess) -> None:
        """Keep one spare of ``template``'s pool alive until retired; a death waits the backoff."""
        tracker = RestartTracker(self._policy())
        await self._ready_event(template.pool).wait()
        previous: WorkerProcess | None = None
        while True:
            spare = template.fresh()
            spare.task = asyncio.current_task()
            if previous is not None:
                spare.restarts, spare.last_exit = previous.restarts, previous.last_exit
            self._current[template.worker_id] = spare
            uptime, pid = 0.0, None
            try:
                spawned = await self._spawn(spare)
            except OSError as exc:
                spare.last_exit = f"could not start: {exc}"
            else:
                pid = spawned
                taken = asyncio.get_running_loop().create_future()
                self._taken[template.worker_id] = taken
                self._router.expect(spare.worker_id, spawned, held=True)
                if await self._taken_or_exited(spare, taken):
                    previous = None
                    continue  # adopted by a slot: the next spare starts at once
                code = await spare.wait()
                uptime = self._clock() - spare.started_at
                spare.last_exit = f"{describe_exit(code)} after {uptime:.1f} s"
                if spare.kill_reason is not None:
                    spare.last_exit, spare.kill_reason = f"{spare.kill_reason}: {spare.last_exit}", None
                self._router.worker_gone(spawned, f"spare {spare.worker_id} (pid {pid}) {spare.last_exit}")
            if spare.retiring:
                return
            spare.restarts += 1
            delay = tracker.record_death(self._clock(), uptime).delay
            spare.state = "backoff"
            logger.error(
                "%s (pid %s) %s; starting a new spare in %.1f s",
                spare.worker_id, pid, spare.last_exit, delay, extra={"worker": spare.worker_id},
            )  # fmt: skip
            previous = spare
            await self._sleep(delay)

    @staticmethod
    async def _taken_or_exited(spare: WorkerProcess, taken: asyncio.Future[None]) -> bool:
        """Wait until a slot takes ``spare`` (True) or its process exits (False)."""
        assert spare.process is not None
        exited = asyncio.ensure_future(spare.process.wait())
        try:
            waits: list[asyncio.Future[Any]] = [exited, taken]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            taken.cancel()
        return taken.done() and not taken.cancelled()


def adopt_spare(router: SpareRouter, worker: WorkerProcess, spare: WorkerProcess) -> int:
    """Make ``spare`` the process of ``worker``'s slot and route to it; returns its pid.

    Logged as ``asyncio-0 adopted asyncio-spare-0 (pid N)``. The spare is moved to the slot's core when that is another one (``repin``), its link is renamed after
    the slot, and the router promotes it (it takes the pool's calls and its catalog at once).
    """
    spare_id = spare.worker_id  # adopt() renames the spare after the slot
    pid = worker.adopt(spare)
    logger.info("%s adopted %s (pid %d)", worker.worker_id, spare_id, pid, extra={"worker": worker.worker_id})
    if worker.cpu is not None and spare.cpu != worker.cpu:
        repin(pid, worker.cpu)
    link = router.link_of(pid)
    if link is not None:
        link.worker_id = worker.worker_id
    router.promote(pid)
    return pid


def repin(pid: int, cpu: int) -> None:
    """Move every thread of process ``pid`` to core ``cpu``; never raises.

    A worker pins itself before it starts a thread; a spare adopted by a slot of another core is moved
    from here instead, thread by thread. A thread started meanwhile inherits its creator's core, so the
    walk is repeated until it finds no thread it has not moved.
    """
    moved: set[int] = set()
    try:
        for _ in range(5):
            threads = {thread.id for thread in psutil.Process(pid).threads()} - moved
            if not threads:
                return
            for tid in threads:
                try:
                    os.sched_setaffinity(tid, {cpu})
                except ProcessLookupError:  # the thread ended
                    pass
            moved |= threads
    except (psutil.Error, OSError, AttributeError) as exc:  # gone, or no affinity on this platform
        logger.debug("could not move pid %d to core %d: %s", pid, cpu, exc)
