"""The arbiter: spawns the worker processes, restarts them with backoff, replaces them without dropping
calls (reload, scaling, memory recycling), stops them gracefully.

Each worker slot (``asyncio-0``, ``trio-0``, ...) has one supervising task that spawns the process,
waits for it to exit (the event loop's child watcher reaps it at once; nothing polls) and asks its
``RestartTracker`` (``restart.py``: exponential backoff, flapping window) how long to wait before the next
start; when a ready *spare* of its pool is kept (``spares.py``), the slot adopts it instead of waiting
for a new interpreter. A flapping slot is marked failed while it rests; while every slot of a runtime is failed, calls to
that runtime fail fast with the reason and /readyz says so. The other runtime keeps serving. A death with
tool calls in flight is the router's to charge to those tools (``quarantine.py``), not the flapping rule's.

Replacing (``reload``, ``scale``, ``recycle``) starts the new processes beside the old ones as
*candidates*, a batch at a time (``scaling.py``); only when every candidate is READY does routing move to
them, and the old ones are drained (no new calls, the running ones finish within ``shutdown_grace``) and
stopped. A candidate that fails to start abandons the replacement and the old workers keep serving.

All intervals use the monotonic clock. The arbiter never touches ZeroMQ: it tells the router which pid to
expect for a slot and when a process is gone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable

import psutil

from .config import Settings
from .containment import Containment
from .draining import drain_and_stop
from .links import WorkerLink
from .process import WorkerProcess, describe_exit
from .restart import RestartPolicy, RestartTracker
from .router_types import WorkerRouter
from .scaling import start_batches
from .slots import QUEUE_POOL, SINGLETON_POOLS, plan_cpus, slot_order, worker_slots
from .spares import Spares, adopt_spare
from .worker_plan import plan_spares, plan_workers

__all__ = ["QUEUE_POOL", "Arbiter", "plan_cpus", "worker_slots"]

logger = logging.getLogger("mcp_supervisor.arbiter")

START_TIMEOUT = 30.0
"""How long a replacement worker may take to become READY before the replacement is abandoned."""
RSS_CHECK_INTERVAL = 2.0
"""How often the resident memory of the workers is compared with ``max_worker_rss``."""


class Arbiter:
    """Keeps one process alive per worker slot, and replaces processes without dropping calls."""

    def __init__(
        self,
        settings: Settings,
        router: WorkerRouter,
        *,
        spawn: Callable[[WorkerProcess], Awaitable[int]] = WorkerProcess.spawn,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``spawn``, ``clock`` and ``sleep`` are what the arbiter asks of the operating system, so that
        tests can pass a fake process table and a fake clock. ``spawn(worker)`` does what
        ``WorkerProcess.spawn`` promises: set ``worker.process`` (something with ``pid``, ``returncode``,
        ``wait()`` and ``send_signal()``), ``started_at`` (on ``clock``) and ``state``, and return the pid.
        ``clock`` is monotonic; ``sleep`` waits that many seconds of it."""
        self.settings = settings
        self.router = router
        self._spawn = spawn
        self._clock = clock
        self._sleep = sleep
        self.workers: dict[str, WorkerProcess] = self._plan(settings)
        """The current worker of each slot, by worker id."""
        self.retiring: list[WorkerProcess] = []
        """Workers being drained and stopped after a replacement."""
        self.candidates: list[WorkerProcess] = []
        """Replacements started but not promoted yet."""
        self._retired_restarts: dict[str, int] = {}
        self.on_pools: Callable[[set[str]], None] = lambda pools: None
        """Told the pools that have slots after a scale changed them (readiness waits for those)."""
        policy = lambda: self.restart_policy  # noqa: E731 - read when a spare's keeper starts
        self.spares = Spares(
            router, spawn=spawn, clock=clock, sleep=sleep, policy=policy, stop=self._drain_and_stop
        )
        """The warm spares of each pool: held READY processes a slot adopts when its worker dies."""
        self._stopping = False
        self._changing = asyncio.Lock()
        self._rss_task: asyncio.Task[None] | None = None
        self.containment = Containment(lambda: {w.pid for w in self.all_workers() if w.pid is not None})

    def restarts_total(self, worker: WorkerProcess) -> int:
        """Restarts of ``worker``'s slot in this supervisor's life: never less than an earlier answer,
        though a reload, a scale or ``ctl restart`` replaces the slot's process (a Prometheus counter)."""
        return self._retired_restarts.get(worker.worker_id, 0) + worker.restarts

    def _set_workers(self, workers: dict[str, WorkerProcess]) -> None:
        """Make ``workers`` the current slots, keeping the restarts of the processes they replace."""
        for wid, old in self.workers.items():
            if workers.get(wid) is not old:
                self._retired_restarts[wid] = self.restarts_total(old)
        self.workers = dict(sorted(workers.items(), key=lambda item: slot_order(item[0])))

    @property
    def restart_policy(self) -> RestartPolicy:
        s = self.settings
        return RestartPolicy(
            initial=s.restart_backoff_initial,
            maximum=s.restart_backoff_max,
            reset_after=s.restart_backoff_reset,
            flap_deaths=s.flap_deaths,
            flap_window=s.flap_window,
            cooldown=s.flap_cooldown,
        )

    def _plan(self, settings: Settings) -> dict[str, WorkerProcess]:
        """Fresh (not started) workers for every slot ``settings`` asks for."""
        return plan_workers(settings, self.router.endpoint)

    def _plan_spares(self, settings: Settings) -> dict[str, WorkerProcess]:
        """Fresh spares for ``settings``: ``spare_workers`` per pool, on the core of its first slot."""
        return plan_spares(settings, self.router.endpoint)

    def all_workers(self) -> list[WorkerProcess]:
        """Current, spare, candidate and retiring workers."""
        return [*self.workers.values(), *self.spares.workers(), *self.candidates, *self.retiring]

    def _by_pid(self, pid: int) -> WorkerProcess | None:
        return next((w for w in self.all_workers() if w.pid == pid), None)

    # -- router callbacks --------------------------------------------------------------------------

    def on_ready(self, link: WorkerLink) -> None:
        worker = self._by_pid(link.pid)
        if worker is None:
            return
        worker.state = "spare" if worker.spare else "ready"
        worker.ready_at = self._clock()
        worker.settled.set()
        self.spares.pool_ready(worker.pool)
        logger.info(
            "%s ready: pid %d, %d tool(s), cpu %s, started in %.2f s",
            link.worker_id, link.pid, len(link.tool_names),
            "any" if worker.cpu is None else worker.cpu, worker.ready_at - worker.started_at,
            extra={"worker": link.worker_id},
        )  # fmt: skip

    def on_unresponsive(self, link: WorkerLink) -> None:
        worker = self._by_pid(link.pid)
        if worker is not None:
            worker.kill_reason = "killed after missing heartbeats (event loop blocked or process stopped)"
            worker.kill(signal.SIGKILL)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start one supervising task per worker slot (and the memory watch); returns at once."""
        for worker in self.workers.values():
            self._launch(worker)
        self.spares.start(self._plan_spares(self.settings))
        self._rss_task = asyncio.create_task(self._watch_memory())

    def _launch(self, worker: WorkerProcess) -> None:
        worker.task = asyncio.create_task(self._supervise(worker))

    async def stop(self, grace: float) -> bool:
        """Drain and stop every worker; returns True when none had to be killed.

        Waits up to ``grace`` seconds for in-flight calls to finish, sends STOP, waits ``STOP_WAIT`` for
        the processes to exit and SIGKILLs what is left. Idempotent.
        """
        self._stopping = True
        if self._rss_task is not None:
            self._rss_task.cancel()
        # the spares stop while the calls drain: their exit must not eat into the calls' grace
        spares = self.spares.workers()
        serving = [worker for worker in self.all_workers() if worker not in spares]
        _, clean = await asyncio.gather(
            self.spares.close("supervisor stopping"),
            self._drain_and_stop(serving, grace, "supervisor stopping"),
        )
        await self.containment.sweep()
        for worker in self.all_workers():
            worker.state = "stopped"
        return clean

    async def _drain_and_stop(self, workers: list[WorkerProcess], grace: float, reason: str) -> bool:
        """``draining.drain_and_stop`` of ``workers`` on this arbiter's router and clock."""
        return await drain_and_stop(self.router, workers, grace, reason, clock=self._clock, sleep=self._sleep)

    # -- replacing workers -------------------------------------------------------------------------

    async def reload(self, settings: Settings) -> str | None:
        """Replace every worker by one built from ``settings`` (tool modules, counts, threads...).

        The new workers start beside the old ones; once every one of them is READY, routing moves to
        them and the old ones are drained and stopped. Returns ``None`` on success, or why the reload
        was abandoned, in which case the old workers were never disturbed.
        """
        async with self._changing:
            failure = await self._transition(self._plan(settings), retire=list(self.workers.values()))
            if failure is None:
                self.settings = settings
                self.on_pools({worker.pool for worker in self.workers.values()})
                await self._renew_spares(lambda spare: True)  # the new code, or the new settings
            return failure

    async def scale(self, runtime: str, count: int) -> str | None:
        """Run ``count`` workers of ``runtime``: start the missing slots, drain and stop the extra ones."""
        async with self._changing:
            settings = self.settings.model_copy(update={f"workers_{runtime}": count})
            plan = self._plan(settings)
            # the running workers stay as they are, on their cores: re-pinning them would restart them,
            # and a scale of one pool must not hurt another (nor fail because another one is failing)
            keep = {wid: w for wid, w in self.workers.items() if wid in plan}
            add = {wid: w for wid, w in plan.items() if wid not in keep}
            retire = [w for wid, w in self.workers.items() if wid not in keep]
            failure = await self._transition(add, retire=retire)
            if failure is None:  # else the old workers serve on, and the settings say so
                self.settings = settings
                self.on_pools({worker.pool for worker in self.workers.values()})
            self._update_pool(runtime)  # a failed pool scaled to 0 is no longer failed
            plan = self._plan_spares(self.settings)
            await self._renew_spares(
                lambda spare: spare.argv != getattr(plan.get(spare.worker_id), "argv", 0)
            )
            return failure

    async def restart(self, target: str) -> str | None:
        """Replace the workers of runtime ``target``, or the one worker ``target``, without failing calls."""
        async with self._changing:
            old = [w for w in self.workers.values() if target in (w.pool, w.worker_id)]
            if not old:
                return f"no runtime or worker called {target!r}"
            logger.info("restarting %s", ", ".join(w.worker_id for w in old))
            fresh = {w.worker_id: w.fresh() for w in old}
            failure = await self._transition(fresh, retire=old)
            if failure is None:
                await self._renew_spares(lambda spare: spare.pool == target)
            return failure

    async def recycle(self, worker_id: str, reason: str) -> str | None:
        """Replace one worker by a fresh process of the same slot (memory over ``max_worker_rss``...)."""
        async with self._changing:
            old = self.workers.get(worker_id)
            if old is None:
                return f"no worker {worker_id}"
            logger.warning(
                "recycling %s (pid %s): %s", worker_id, old.pid, reason, extra={"worker": worker_id}
            )
            # the calls it holds may run to their own deadline, not only shutdown_grace
            grace = max(self.settings.shutdown_grace, self.settings.request_timeout)
            return await self._transition({worker_id: old.fresh()}, retire=[old], grace=grace)

    async def _renew_spares(self, which: Callable[[WorkerProcess], bool]) -> None:
        """Stop the spares ``which`` selects and keep the ones the settings ask for."""
        await self.spares.retire(which, "replaced")
        self.spares.start(self._plan_spares(self.settings))

    async def _transition(
        self, add: dict[str, WorkerProcess], retire: list[WorkerProcess], grace: float | None = None
    ) -> str | None:
        """Start ``add`` as candidates; when all are READY, promote them and retire ``retire``.

        If a candidate fails to start or is not READY within ``START_TIMEOUT``, every candidate is
        stopped, nothing is retired, and the reason is returned. Workers of a singleton pool (the task
        queue) are replaced last and without overlap: the old one is drained and stopped first.
        ``grace`` (default ``shutdown_grace``) is how long the retired workers' calls get to finish.
        """
        singles = {wid: w for wid, w in add.items() if w.pool in SINGLETON_POOLS}
        add = {wid: w for wid, w in add.items() if wid not in singles}
        retire_singles = [w for w in retire if w.pool in SINGLETON_POOLS]
        retire = [w for w in retire if w not in retire_singles]
        failure = await self._overlap(add, retire, grace)
        if failure is None and (singles or retire_singles):
            await self._swap(singles, retire_singles)
        return failure

    async def _swap(self, add: dict[str, WorkerProcess], retire: list[WorkerProcess]) -> None:
        """Replace without overlap: drain and stop ``retire``, then start ``add`` and wait (at most
        ``START_TIMEOUT``) for it to be READY; one that fails to start is restarted as usual."""
        self.retiring.extend(retire)
        try:
            await self._drain_and_stop(retire, self.settings.shutdown_grace, "replaced")
        finally:
            self.retiring = [w for w in self.retiring if w not in retire]
        retiring_ids = {w.worker_id for w in retire}
        self._set_workers({**{wid: w for wid, w in self.workers.items() if wid not in retiring_ids}, **add})
        for worker in add.values():
            self._launch(worker)
        if add:
            _, late = await asyncio.wait(
                [asyncio.ensure_future(w.settled.wait()) for w in add.values()], timeout=START_TIMEOUT
            )
            for wait in late:
                wait.cancel()
            if late:
                logger.warning("%s not ready within %g s; restarting as usual", ", ".join(add), START_TIMEOUT)

    async def _overlap(
        self, add: dict[str, WorkerProcess], retire: list[WorkerProcess], grace: float | None = None
    ) -> str | None:
        """Replace with overlap: candidates first, the old workers drained once all candidates are READY."""
        if not add and not retire:
            return None
        try:
            failure = None
            for batch in start_batches(list(add.values())):  # a start storm would starve the running
                for worker in batch:
                    worker.candidate = True
                    self.candidates.append(worker)
                    self._launch(worker)
                failure = await self._await_candidates(batch)
                if failure is not None:
                    break
            if failure is not None:
                logger.error("replacement abandoned, the current workers keep serving: %s", failure)
                await self._drain_and_stop(list(add.values()), 0, f"replacement abandoned: {failure}")
                return failure
        finally:
            self.candidates = [w for w in self.candidates if w not in add.values()]
        for worker in add.values():
            worker.candidate = False
            if worker.pid is not None:
                self.router.promote(worker.pid)
        retiring_ids = {w.worker_id for w in retire}
        self._set_workers({**{wid: w for wid, w in self.workers.items() if wid not in retiring_ids}, **add})
        self.retiring.extend(retire)
        try:
            await self._drain_and_stop(retire, grace or self.settings.shutdown_grace, "replaced")
        finally:
            self.retiring = [w for w in self.retiring if w not in retire]
        return None

    async def _await_candidates(self, candidates: list[WorkerProcess]) -> str | None:
        if not candidates:  # scaling down only
            return None

        async def settled(worker: WorkerProcess) -> None:
            await worker.settled.wait()

        waits = [asyncio.ensure_future(settled(w)) for w in candidates]
        try:
            _, pending = await asyncio.wait(waits, timeout=START_TIMEOUT)
        finally:
            for wait in waits:
                wait.cancel()
        failed = [w for w in candidates if w.start_failed is not None]
        if failed:
            return f"{failed[0].worker_id} did not start: {failed[0].start_failed}"
        if pending:
            late = [w.worker_id for w in candidates if not w.settled.is_set()]
            return f"{', '.join(late)} not ready within {START_TIMEOUT:g} s"
        return None

    async def _watch_memory(self) -> None:
        """Recycle a worker whose resident memory is over ``max_worker_rss``; never raises."""
        while True:
            await self._sleep(RSS_CHECK_INTERVAL)
            limit = self.settings.worker_rss_limit(psutil.virtual_memory().total)
            if not limit or self._changing.locked():
                continue
            for worker in list(self.workers.values()):
                if worker.pid is None or worker.state != "ready":
                    continue
                try:
                    rss = psutil.Process(worker.pid).memory_info().rss
                except psutil.Error:
                    continue
                if rss > limit:
                    await self.recycle(
                        worker.worker_id, f"resident memory {rss} bytes over max_worker_rss {limit}"
                    )
                    break

    # -- one slot ----------------------------------------------------------------------------------

    async def _supervise(self, worker: WorkerProcess) -> None:
        tracker = RestartTracker(self.restart_policy)
        died = False
        while not (self._stopping or worker.retiring):
            pid: int | None
            code: int | None
            running = False  # tool calls were in flight when it died
            spare = self.spares.take(worker.pool) if died else None  # restarts prefer a ready spare
            try:
                if spare is not None:
                    spawned = adopt_spare(self.router, worker, spare)
                else:
                    with self.containment.spawning():
                        spawned = await self._spawn(worker)
            except OSError as exc:
                worker.last_exit = f"could not start: {exc}"
                logger.error(
                    "%s could not start: %s", worker.worker_id, exc, extra={"worker": worker.worker_id}
                )
                code, pid, uptime = None, None, 0.0
            else:
                pid, began = spawned, self._clock()  # an adopted spare's life counts from now
                if spare is None:
                    self.router.expect(worker.worker_id, spawned, held=worker.candidate)
                else:
                    worker.started_at = began  # /status's uptime and the backoff count the slot's life
                    self._update_pool(worker.pool)
                code = await worker.wait()
                uptime = self._clock() - began
                await self.containment.sweep()
            if code is not None:
                worker.last_exit = f"{describe_exit(code)} after {uptime:.1f} s"
                if worker.kill_reason is not None:
                    worker.last_exit = f"{worker.kill_reason}: {worker.last_exit}"
                    worker.kill_reason = None
                death = not (self._stopping or worker.retiring or worker.candidate)  # not a stop
                why = f"worker {worker.worker_id} (pid {pid}) {worker.last_exit}"
                running = self.router.worker_gone(spawned, why, death=death)
            if self._stopping or worker.retiring:
                return
            self.router.recent_errors.worker_exited(worker.worker_id, pid, worker.last_exit or "exited")
            if worker.candidate:
                worker.start_failed = worker.last_exit or "exited"
                worker.settled.set()
                return
            worker.restarts += 1
            died = True
            decision = tracker.record_death(self._clock(), uptime, running=running)
            if decision.failed:
                worker.state = "failed"
                self._update_pool(worker.pool)
                logger.error(
                    "%s died %d times in %.0f s (last: %s); resting %.0f s before trying again",
                    worker.worker_id, decision.deaths_in_window, tracker.policy.flap_window,
                    worker.last_exit, decision.delay, extra={"worker": worker.worker_id},
                )  # fmt: skip
            else:
                worker.state = "backoff"
                # a spare at once, unless the slot keeps dying: then its backoff has grown and is waited
                spare = self.spares.peek(worker.pool) if decision.delay <= tracker.policy.initial else None
                then = f"replaced by {spare.worker_id} (pid {spare.pid})" if spare else None
                logger.error(
                    "%s (pid %s) %s; %s",
                    worker.worker_id, pid, worker.last_exit, then or f"restarting in {decision.delay:.1f} s",
                    extra={"worker": worker.worker_id},
                )  # fmt: skip
            if decision.failed or spare is None:
                await self._sleep(decision.delay)
                self._update_pool(worker.pool)

    def _update_pool(self, pool: str) -> None:
        slots = [w for w in self.workers.values() if w.pool == pool]
        if slots and all(w.state == "failed" for w in slots):
            self.router.set_pool_failed(pool, f"every {pool} worker is failing: {slots[0].last_exit}")
        else:
            self.router.set_pool_failed(pool, None)
