"""The engine's core: the parts that keep the queue durable, put together, and the reads its tools share.

Concurrency model
-----------------
Everything runs on one Trio thread, except SQLite, which runs on the store's own thread. Every change of
state is made under the commit lock: it builds a ``Changes`` (see ``state.py``) with the functions of
``transitions.py``, commits it in one transaction and only then applies it to memory and answers. So:

- a tool returns only after what it reports is on disk (``synchronous=FULL``: synced);
- memory is never ahead of the database, and a failed commit changes nothing;
- two transitions of one task can never interleave (a cancel racing a completion is decided by whichever
  commits first; the loser sees the task already ended).

Reads do not take the lock: they see the last committed state.

On a shared (PostgreSQL) database, memory is a mirror of the database and several engines commit
(``sharing.py``): the three guarantees hold per engine, every write is checked against the revision it
read (a transition decided on a stale mirror is re-read and decided again: ``Committer.decide``), and the
rows a tool answers about are read from the database.

Cancelling the engine (``serve``) stops everything without writing — the next start recovers.

The parts, each in its own module and each told here what it needs:

- ``committer.py``: the lock and the group commit (one sync for every transition handed in meanwhile);
- ``scheduler.py``: the loop that starts queued tasks on executors;
- ``runner.py``: one task per attempt in progress, recording how it ended, and the progress writer;
- ``router_cache.py``: the tool catalog and the worker processes, as the router last listed them;
- ``recovery.py``: what ``serve`` does first, with the work a stop or a crash left behind;
- ``retention.py``: the periodic sweep that deletes what has been finished long enough.

Protocol tasks (MCP tasks, ``protocol_transitions.py``) are rows of the same queue. After each commit that
changes the wire status of one (``protocol_view.WIRE_STATUS``; not its creation), and at most every
``runner.FLUSH_INTERVAL`` for a changed progress message of a running one, ``on_protocol_change`` is
called with its ``DetailedTask``; it must not block or raise (a failure is logged and ignored).

Calls go down from the tool operations to the parts; a part calls back up only through the two functions
it is handed here: ``_committed`` (apply a committed transition and start its attempts) and ``wake``.
The tool operations live in ``task_ops.py``, ``queue_ops.py``, ``executor_ops.py`` and
``workflow_ops.py``, each a subclass of ``EngineCore``; ``engine.Engine`` combines them.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import trio

from . import protocol_transitions as ptr
from . import queries, retention
from .committer import Committer
from .db import Db, SharedStore, StoreError, Write, open_store
from .errors import NotFoundError, QueueUnavailableError
from .executor import Executor
from .leases import DEFAULT_LEASE_SECONDS
from .models import TASK_REF_PATTERN, TERMINAL_TASK_STATUSES, check_id
from .protocol_view import WIRE_STATUS, detailed_view
from .records import LogLine, StepRecord, TaskRecord, WorkflowRecord
from .recovery import recover
from .router_cache import RouterCache
from .runner import Run, Runner
from .scheduler import Scheduler
from .scheduling import estimate_starts, mean_durations, waiting_reason
from .sharing import Sharing, engine_id
from .sizes import DEFAULT_STEP_MAX_BYTES
from .state import Changes, SharedState, State
from .store import Synchronous
from .views import log_view, task_summary, workers_view

logger = logging.getLogger("mcp_supervisor.taskqueue")

T = TypeVar("T")

CANCEL_WAIT = 20.0
"""``task_cancel`` waits this long for a running call to stop in its worker before recording it cancelled."""
DEFAULT_TASK_TTL = 3600.0
"""Protocol tasks are deleted this long after they end (seconds; 0 keeps them forever)."""
DEFAULT_TASK_RETENTION = 7 * 24 * 3600.0
"""Finished queue tasks and workflows are deleted this long after they end (seconds; 0: forever)."""
ENDED_CACHE_SIZE = 4096
"""How many rendered ended protocol tasks ``tasks:get`` keeps in memory (the rest are read back)."""


class EngineCore:
    """The state, database, scheduler and runners the tool operations share (see the module docstring).

    Subclasses add the tool operations; ``engine.Engine`` is the one to use.
    """

    def __init__(
        self,
        db_path: str | Path,
        executor: Executor,
        *,
        clock: Callable[[], float] = time.time,
        synchronous: Synchronous = "FULL",
        rng: random.Random | None = None,
        task_ttl: float = DEFAULT_TASK_TTL,
        task_retention: float = DEFAULT_TASK_RETENTION,
        step_max_bytes: int = DEFAULT_STEP_MAX_BYTES,
        on_protocol_change: Callable[[dict[str, Any]], None] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.db_path = db_path
        self.engine_id = engine_id()
        """This engine's id (host, pid, random): ``claimed_by`` of the tasks it starts."""
        self.task_ttl = float(task_ttl)
        self.task_retention = float(task_retention)
        self.step_max_bytes = int(step_max_bytes)
        self._on_protocol_change = on_protocol_change
        self._ended: OrderedDict[str, tuple[TaskRecord, dict[str, Any]]] = OrderedDict()
        """Task id -> (record, DetailedTask) of ended protocol tasks, most recently used last."""
        self._clock = clock
        self._rng = rng or random.Random()
        self._store = open_store(db_path, synchronous=synchronous, engine_id=self.engine_id)
        shared = self._store.shared
        self._state = SharedState() if shared else State()
        self._committer = Committer(
            self._store,
            self._changes,
            self._committed,
            announce=self._announce if shared else None,
            refresh=self._refresh_changes if shared else None,
        )
        self._router = RouterCache(executor)
        self._runner = Runner(
            executor,
            self._committer,
            self._router,
            self._store,
            clock=clock,
            wake=self.wake,
            on_change=self._progress_changed if on_protocol_change is not None else None,
        )
        self._scheduler = Scheduler(self._state, self._committer, self._router, self._runner)
        self._sharing: Sharing | None = None
        """The mirror, leases and claims of a shared database (``None`` on SQLite)."""
        if shared:
            self._sharing = Sharing(
                cast(SharedStore, self._store),
                self._state,
                self._committer,
                self._runner,
                engine_id=self.engine_id,
                lease_seconds=lease_seconds,
                clock=clock,
                wake=self.wake,
                protocol_changed=self._changed_elsewhere if on_protocol_change is not None else None,
                forget=self._forget,
            )
            self._scheduler.claim = self._sharing.claim_queued
        self._serving = False
        self._started = False
        self.expired = 0
        """How many tasks the retention sweep deleted since this engine was made (for ``tasks:stats``)."""

    @property
    def serving(self) -> bool:
        """True between ``serve``'s ``started()`` and its end."""
        return self._serving

    @property
    def batches(self) -> int:
        """How many group-commit transactions were committed (for tests and diagnostics)."""
        return self._committer.batches

    @property
    def dispatch_rounds(self) -> int:
        """How many times the scheduler has looked at the queue (for tests and diagnostics)."""
        return self._scheduler.rounds

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open/create the database (WAL), recover, call ``task_status.started()``, then schedule until
        cancelled.

        Recovery: queued tasks stay queued; a task that was running is re-queued counting the interrupted
        run as an attempt, or failed when it has no retries left; workflows continue where they were.
        Recovery does not call the executor (the router may not answer before this worker is READY).

        Raises:
            QueueUnavailableError: the database is in use by another engine or cannot be opened.

        Cancellation: running attempts are cancelled (their calls cancelled in their workers) and nothing
        more is written; the database is closed. What was running is recovered by the next ``serve``.
        """
        if self._started:
            raise QueueUnavailableError("this engine is already serving")
        self._started = True
        try:
            await self._store.open()
            if self._sharing is None:
                recovered = await recover(self._store, self._clock, self._rng)
                self._state.restore(recovered.state)
                self._scheduler.restore(recovered.durations, recovered.waits)
            else:
                snapshot = await self._sharing.start()
                self._scheduler.restore(snapshot.durations, {})
            async with trio.open_nursery() as nursery:
                await nursery.start(self._committer.serve)
                await nursery.start(self._runner.serve)
                nursery.start_soon(self._scheduler.serve)
                nursery.start_soon(self._serve_sweeps)
                if self._sharing is not None:
                    await self._sharing.settle_expired()
                    await self._advance_workflows()
                    nursery.start_soon(self._sharing.serve)
                self._serving = True
                task_status.started()
        finally:
            self._serving = False
            await self._store.close()
            self._started = False

    def wake(self) -> None:
        """Ask the scheduler to look at the queue again soon."""
        self._scheduler.wake()

    # -- a shared database (see sharing.py) --

    @property
    def shared(self) -> bool:
        """True when other engines may share this engine's database (PostgreSQL)."""
        return self._sharing is not None

    def _announce(self, c: Changes) -> list[Write]:
        assert self._sharing is not None
        return self._sharing.announce(c)

    async def _refresh_changes(self, c: Changes) -> None:
        assert self._sharing is not None
        await self._sharing.mirror.refresh_changes(c)

    def _forget(self, task_id: str) -> None:
        self._ended.pop(task_id, None)

    def _changed_elsewhere(self, task: TaskRecord) -> None:
        self._notify(self._render(task))

    async def _decide(self, decide: Callable[[], Awaitable[T]]) -> T:
        """``decide()`` under the commit lock, again while a shared row changed under it
        (``Committer.decide``)."""
        return await self._committer.decide(decide)

    async def _stopped_elsewhere(self, task_id: str) -> None:
        """Wait until a task running on another engine is no longer running (woken by the mirror)."""
        assert self._sharing is not None
        while (await self._find_task(task_id)).status == "running":
            await self._sharing.wait_changed(1.0)

    async def _advance_workflows(self) -> None:
        assert self._sharing is not None
        # no catalog: like recovery, this runs before the worker is READY, when the router cannot answer
        await self._sharing.advance_workflows(self._changes, None)

    def hold(self) -> None:
        """Start no new attempt from now on; the attempts running go on to their end. The worker calls
        it when it is drained (a reload or a stop), so that what runs finishes within the supervisor's
        grace instead of being cut and recovered; queued tasks wait for the next engine."""
        self._scheduler.held = True

    def _require_serving(self) -> None:
        if not self._serving:
            raise QueueUnavailableError("the task queue is not running (its engine is not serving)")

    def _changes(self, catalog: dict[str, dict[str, Any]] | None = None) -> Changes:
        return Changes(
            self._state,
            self._clock(),
            rng=self._rng,
            catalog=catalog,
            step_limit=self.step_max_bytes,
            owner=self.engine_id,
        )

    def _committed(self, c: Changes) -> None:
        """Apply a committed ``c`` to memory and start the attempts it started (the committer calls this
        once per committed transaction, before it answers anyone)."""
        changed = [
            task
            for task in c.tasks.values()
            if task.origin == ptr.ORIGIN and task.task_id not in c.created and self._status_changed(task)
        ]
        c.apply()
        for task_id in c.deleted:
            self._ended.pop(task_id, None)
        for task in changed:
            view = self._render(task)
            if self._on_protocol_change is not None:
                self._notify(view)
        self._scheduler.committed(c)
        for task, executor_id in c.started:
            self._runner.start(task, executor_id)
        self._scheduler.wake()

    def _status_changed(self, task: TaskRecord) -> bool:
        before = self._state.tasks.get(task.task_id)
        return before is None or WIRE_STATUS.get(before.status) != WIRE_STATUS.get(task.status)

    def _render(self, task: TaskRecord) -> dict[str, Any]:
        """The ``DetailedTask`` of a protocol task now (an ended one is kept in the small cache)."""
        run = self._runner.running.get(task.task_id) if task.status == "running" else None
        if run is not None:
            message = run.status_message()
        elif task.status == "running" and task.progress_message is not None:  # running on another engine:
            percent = f" ({task.progress:.0f}%)" if task.progress else ""  # as it last wrote it
            message = f"{task.progress_message}{percent}"
        else:
            message = None
        view = detailed_view(
            task,
            now=self._clock(),
            ttl=self.task_ttl,
            status_message=message,
            updated_at=run.changed_at if run is not None else None,
        )
        if task.status in TERMINAL_TASK_STATUSES:
            self._ended[task.task_id] = (task, view)
            self._ended.move_to_end(task.task_id)
            while len(self._ended) > ENDED_CACHE_SIZE:
                self._ended.popitem(last=False)
        return view

    def _notify(self, view: dict[str, Any]) -> None:
        assert self._on_protocol_change is not None
        try:
            self._on_protocol_change(view)
        except Exception:
            logger.debug("task queue: the protocol task change hook failed", exc_info=True)

    def _progress_changed(self, run: Run) -> None:
        task = self._state.tasks.get(run.task.task_id)
        if task is not None and task.status == "running" and self._on_protocol_change is not None:
            self._notify(self._render(task))

    async def sweep(self) -> int:
        """Delete the rows whose retention ran out (see ``retention.py``); returns how many tasks went.

        Raises:
            StoreError: the database refused a batch.
        """
        deleted = await retention.sweep(
            self._store, self._committer.lock, self._clock(), self.task_ttl, self.task_retention
        )
        for task_id in deleted:
            self._ended.pop(task_id, None)
        self.expired += len(deleted)
        return len(deleted)

    async def _serve_sweeps(self) -> None:
        """Sweep at start and then every ``retention.sweep_interval``; never returns unless cancelled (or
        at once when nothing is ever deleted). A failed sweep is logged; the next one tries again."""
        interval = retention.sweep_interval(self.task_ttl, self.task_retention)
        if interval is None:
            return
        while True:
            try:
                count = await self.sweep()
                if count:
                    logger.info("task queue: deleted %d expired task(s)", count)
            except StoreError as exc:
                logger.warning("task queue: the retention sweep failed: %s", exc)
            await trio.sleep(interval)

    async def _find_task(self, task_id: Any) -> TaskRecord:
        """The task as committed now: from memory while unfinished, else from the database (always from
        the database when it is shared: another engine may have changed it). Call it under the lock to
        decide on a transition (a record read before taking the lock may be stale).

        Raises:
            InvalidRequestError: ``task_id`` is not a task id. NotFoundError: there is no such task.
        """
        check_id(task_id, "task_id", TASK_REF_PATTERN)
        task = None if self._sharing is not None else self._state.tasks.get(task_id)
        if task is None:
            task = await self._store.read(lambda conn: queries.get_task(conn, task_id))
        if task is None:
            raise NotFoundError(f"task_id: no task {task_id!r}")
        return task

    async def _logs(self, task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The log lines of these tasks as answered (see ``views.log_view``), up to this moment: the
        progress messages not yet written are written first."""
        await self._runner.flush()

        def read(conn: Db) -> dict[str, list[LogLine]]:
            return {task_id: queries.task_logs(conn, task_id) for task_id in task_ids}

        lines = await self._store.read(read)
        return {task_id: [log_view(line) for line in found] for task_id, found in lines.items()}

    async def _queue_info(self) -> tuple[dict[str, int], dict[str, float | None]]:
        """Queue positions (1-based, dispatch order) and estimated start times of the queued tasks."""
        await self._router.refresh_workers()
        order = self._state.queued()
        positions = {task.task_id: index + 1 for index, task in enumerate(order)}
        return positions, self._estimates(order, paused=self._state.paused is not None)

    async def _place(self, task: TaskRecord) -> tuple[dict[str, int], dict[str, float | None]]:
        """Like ``_queue_info``, for one task only: its position comes from the ordered queue and its
        estimate from a simulation of the tasks ahead of it only (none at all while paused)."""
        position = self._state.position(task)
        if position is None:
            return {}, {}
        if self._state.paused is not None:
            return {task.task_id: position}, {task.task_id: None}
        await self._router.refresh_workers()
        state = self._state
        ahead = [state.tasks[task_id] for _, _, task_id in state.order[:position]]
        return {task.task_id: position}, {
            task.task_id: self._estimates(ahead, paused=False).get(task.task_id)
        }

    def _estimates(self, queued: list[TaskRecord], *, paused: bool) -> dict[str, float | None]:
        """Estimated start times of ``queued`` (in dispatch order), from the attempts running now."""
        state = self._state
        running = [
            (state.tasks.get(r.task.task_id, r.task), r.executor_id) for r in self._runner.running.values()
        ]
        return estimate_starts(
            queued,
            running,
            self._scheduler.executors(),
            mean_durations(self._scheduler.durations),
            self._clock(),
            paused=paused,
        )

    def _summary(
        self, task: TaskRecord, positions: dict[str, int], estimates: dict[str, float | None]
    ) -> dict[str, Any]:
        run = self._runner.running.get(task.task_id) if task.status == "running" else None
        reason = self._scheduler.reasons.get(task.task_id)
        if task.status == "queued" and self._state.paused is not None:
            reason = f"the queue is paused: {self._state.paused.get('reason') or 'no reason given'}"
        elif task.status == "queued" and reason is None:
            reason = waiting_reason(task.task_type, self._scheduler.executors())
        return task_summary(
            task,
            position=positions.get(task.task_id),
            estimate=estimates.get(task.task_id),
            reason=reason,
            progress=run.progress if run is not None else task.progress,
            progress_message=run.message if run is not None else task.progress_message,
        )

    async def _new_id(self, prefix: str, exists: Callable[..., bool]) -> str:
        while True:
            candidate = f"{prefix}-{uuid.uuid4().hex[:16]}"
            if candidate in self._state.tasks or candidate in self._state.workflows:
                continue

            def probe(conn: Db, value: str = candidate) -> bool:
                return exists(conn, value)

            if not await self._store.read(probe):
                return candidate

    async def _find_workflow(self, workflow_id: Any) -> tuple[WorkflowRecord, dict[str, StepRecord]]:
        check_id(workflow_id, "workflow_id")
        workflow = None if self._sharing is not None else self._state.workflows.get(workflow_id)
        if workflow is not None:
            return workflow, dict(self._state.steps.get(workflow_id, {}))
        found = await self._store.read(lambda conn: queries.get_workflow(conn, workflow_id))
        if found is None:
            raise NotFoundError(f"workflow_id: no workflow {workflow_id!r}")
        record, steps = found
        return record, {step.step_id: step for step in steps}

    async def _worker_report(self, worker_id: str | None) -> dict[str, Any]:
        """What ``worker_status`` answers (see there)."""
        if worker_id is not None:
            check_id(worker_id, "worker_id")
        await self._router.refresh_workers(0.0)
        executors = self._scheduler.executors()
        if worker_id is not None:
            executors = [e for e in executors if e.worker_id == worker_id]
            if not executors:
                raise NotFoundError(
                    f"worker_id: no executor {worker_id!r} (neither a live worker process nor registered)"
                )
        totals = await self._store.read(queries.worker_totals)
        running = [(r.task.task_id, r.executor_id) for r in self._runner.running.values()]
        queued = [t for t in self._state.tasks.values() if t.status == "queued"]
        views = workers_view(
            executors, self._scheduler.executors(), running, queued, self._state.registrations, totals
        )
        return {
            "workers": views,
            "total_workers": len(views),
            "live_workers": sum(1 for v in views if v["live"]),
            "router_error": self._router.workers_error,
        }
