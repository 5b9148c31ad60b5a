"""The engine's core: its state and database, recovery, the scheduler and the runners of attempts.

Concurrency model
-----------------
Everything runs on one Trio thread, except SQLite, which runs on the store's own thread. Every change of
state is made under ``self._lock``: it builds a ``Changes`` (see ``state.py``) with the functions of
``transitions.py``, commits it in one transaction and only then applies it to memory and answers. So:

- a tool returns only after what it reports is on disk (``synchronous=FULL``: synced);
- memory is never ahead of the database, and a failed commit changes nothing;
- two transitions of one task can never interleave (a cancel racing a completion is decided by whichever
  commits first; the loser sees the task already ended).

Group commit: the frequent transitions (a submission, the end of an attempt, a dispatch) do not commit one
by one. They hand a synchronous function that records them in a ``Changes`` to ``_transact``; the
committer task (``_serve_commits``) takes everything handed in while the previous transaction was being
synced, runs those functions one after the other on one shared ``Changes`` (each sees the ones before it),
commits the lot in one transaction — one sync — and only then applies it and answers each caller. A
function that raises is rewound out of the shared ``Changes`` and fails alone; if the transaction itself
fails, each function is run again on its own, in its own transaction, so that a bad write fails only its
own caller. The rarer transitions (cancel, priority, pause, workflows, registrations) commit on their own
under the same lock (``_commit``).

Reads do not take the lock: they see the last committed state.

The scheduler loop wakes on every event that can let a task start (a submit, an attempt ending, a resume, a
registration, a retry delay running out) and once a second while tasks wait for an executor to appear.
Each attempt runs in its own task in the engine's nursery, under a cancel scope that ``task_cancel`` uses;
cancelling the engine (its nursery) stops everything without writing — the next start recovers.

The tool operations live in ``task_ops.py``, ``queue_ops.py``, ``executor_ops.py`` and
``workflow_ops.py``, each a subclass of ``EngineCore``; ``engine.Engine`` combines them.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import trio

from . import queries, rows
from . import transitions as tr
from .errors import NotFoundError, QueueUnavailableError
from .executor import Executor, ToolCallRefused
from .models import TASK_REF_PATTERN, check_id
from .queries import DURATION_SAMPLES
from .records import LogLine, StepRecord, TaskRecord, WorkflowRecord
from .scheduling import (
    ExecutorView,
    estimate_starts,
    executor_views,
    mean_durations,
    plan,
    waiting_reason,
)
from .state import Changes, State
from .store import Store, Synchronous
from .views import executor_view, iso, task_summary

logger = logging.getLogger("mcp_supervisor.taskqueue")

T = TypeVar("T")

CATALOG_TTL = 2.0
"""Seconds a fetched tool catalog is reused (a task type missing from it triggers a fresh fetch)."""
WORKERS_TTL = 1.0
"""Seconds a fetched list of worker processes is reused by the scheduler."""
ROUTER_TIMEOUT = 10.0
"""Seconds to wait for the router to list tools or workers before using the last known answer."""
RECHECK_INTERVAL = 1.0
"""While queued tasks wait for an executor, the scheduler looks at the worker processes this often."""
FLUSH_INTERVAL = 0.5
"""Progress of running tasks reaches the database at most this late (it is not an acknowledged state)."""
CANCEL_WAIT = 20.0
"""``task_cancel`` waits this long for a running call to stop in its worker before recording it cancelled."""
TIMEOUT_GRACE = 5.0
"""A call the router has not answered this long after its deadline (the task's timeout, else the tool's
``timeout_seconds``) is abandoned as failed: a lost answer must not keep a task running forever."""
PROGRESS_LOG_LIMIT = 200
"""At most this many progress messages per attempt go to the task's log."""
COMMIT_RETRIES = (0.1, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to commit a background transition (an attempt's end) the disk refused."""
MAX_BATCH = 1000
"""At most this many transitions share one transaction of the group commit."""


@dataclass(eq=False)
class _Request:
    """One transition waiting for the group commit (see ``EngineCore._transact``)."""

    record: Callable[[Changes], Any]
    catalog: dict[str, dict[str, Any]] | None
    dispatch: bool = False
    done: trio.Event = field(default_factory=trio.Event)
    taken: bool = False
    outcome: tuple[bool, Any] = (False, None)


@dataclass(eq=False)
class Run:
    """One attempt in progress: its cancel scope, its latest progress and whether it has stopped."""

    task: TaskRecord
    executor_id: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    cancel_reason: str | None = None
    progress: float | None = 0.0
    message: str | None = None
    dirty: bool = False
    logged: int = 0
    pending_logs: list[LogLine] = field(default_factory=list)
    finishing: bool = False
    """Its end is being committed, with its pending log lines (``_flush`` leaves them alone)."""


class EngineCore:
    """The state, database, scheduler and runners the tool operations share (see the module docstring).

    Subclasses add the tool operations; ``engine.Engine`` is the one to use.
    """

    def __init__(
        self,
        db_path: Path,
        executor: Executor,
        *,
        clock: Callable[[], float] = time.time,
        synchronous: Synchronous = "FULL",
        rng: random.Random | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self._executor = executor
        self._clock = clock
        self._rng = rng or random.Random()
        self._store = Store(self.db_path, synchronous=synchronous)
        self._lock = trio.Lock()
        self._state = State()
        self._running: dict[str, Run] = {}
        self._eligible_at: dict[str, float] = {}
        self._reasons: dict[str, str] = {}
        self._durations: dict[str, deque[float]] = {}
        self._wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._serving = False
        self._catalog_cache: dict[str, dict[str, Any]] | None = None
        self._catalog_at = -math.inf
        self._workers_cache: list[dict[str, Any]] = []
        self._workers_at = -math.inf
        self._workers_error: str | None = None
        self._pending: list[_Request] = []
        self._pending_work = trio.Event()
        self._committer_running = False
        self.batches = 0
        """How many group-commit transactions were committed (for tests and diagnostics)."""

    @property
    def serving(self) -> bool:
        """True between ``serve``'s ``started()`` and its end."""
        return self._serving

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
        if self._serving or self._nursery is not None:
            raise QueueUnavailableError("this engine is already serving")
        await self._store.open()
        try:
            snapshot = await self._store.read(queries.load_snapshot)
            await self._recover(snapshot)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._committer_running = True
                nursery.start_soon(self._serve_commits)
                nursery.start_soon(self._scheduler_loop)
                nursery.start_soon(self._flush_loop)
                self._serving = True
                task_status.started()
        finally:
            self._serving = False
            self._nursery = None
            self._running.clear()
            await self._store.close()

    async def _recover(self, snapshot: queries.Snapshot) -> None:
        state = State(
            tasks={task.task_id: task for task in snapshot.tasks},
            workflows={workflow.workflow_id: workflow for workflow in snapshot.workflows},
            registrations={r.worker_id: r for r in snapshot.registrations},
            paused=snapshot.settings.get("paused"),
            next_seq=snapshot.next_seq,
        )
        for step in snapshot.steps:
            state.steps.setdefault(step.workflow_id, {})[step.step_id] = step
        self._state = state
        self._durations = {
            kind: deque(values, maxlen=DURATION_SAMPLES) for kind, values in snapshot.durations.items()
        }
        pending_dependencies = {
            dependency
            for workflow in state.workflows.values()
            if workflow.status == "pending"
            for dependency in workflow.dependencies
            if dependency not in state.workflows
        }
        known = await self._store.read(lambda conn: queries.workflow_statuses(conn, pending_dependencies))
        c = self._changes()
        for task in list(state.tasks.values()):
            if task.status == "running":
                tr.interrupted(c, task)
        for workflow in list(state.workflows.values()):
            current = c.workflow(workflow.workflow_id)
            if current is None:
                continue
            if current.status == "pending":
                tr.start_workflow_if_ready(c, current, known)
            elif current.status == "running":
                tr.advance_workflow(c, workflow.workflow_id)
        await self._store.write(c.writes())
        c.apply()
        now, now_t = self._clock(), trio.current_time()
        for task in state.tasks.values():
            if task.status == "queued" and task.not_before is not None and task.not_before > now:
                self._eligible_at[task.task_id] = now_t + (task.not_before - now)
        recovered = sum(1 for t in c.tasks.values() if t.status == "queued")
        if c.tasks:
            logger.warning(
                "task queue: recovered %d interrupted task(s): %d re-queued, %d failed",
                len(c.tasks),
                recovered,
                len(c.tasks) - recovered,
            )

    def wake(self) -> None:
        """Ask the scheduler to look at the queue again soon."""
        self._wakeup.set()

    def _require_serving(self) -> None:
        if not self._serving:
            raise QueueUnavailableError("the task queue is not running (its engine is not serving)")

    def _changes(self, catalog: dict[str, dict[str, Any]] | None = None) -> Changes:
        return Changes(self._state, self._clock(), rng=self._rng, catalog=catalog)

    async def _commit(self, c: Changes, *, background: bool = False) -> None:
        """Commit ``c`` in one transaction, then apply it to memory and start what it started.

        A foreground commit (a tool call) raises the database's error and changes nothing. A background
        commit (an attempt's end, a dispatch) is tried again a few times, then raised.

        Call it holding ``self._lock``.
        """
        writes = c.writes()
        delays = COMMIT_RETRIES if background else ()
        for attempt in range(len(delays) + 1):
            try:
                await self._store.write(writes)
                break
            except sqlite3.Error as exc:
                if attempt == len(delays):
                    raise QueueUnavailableError(f"database: cannot commit: {exc}") from None
                logger.error("task queue: commit failed (%s); trying again in %g s", exc, delays[attempt])
                await trio.sleep(delays[attempt])
        self._committed(c)

    def _committed(self, c: Changes) -> None:
        """Apply a committed ``c`` to memory and start the attempts it started."""
        c.apply()
        now_t = trio.current_time()
        for task in c.tasks.values():
            if task.status != "queued":
                self._eligible_at.pop(task.task_id, None)
                self._reasons.pop(task.task_id, None)
        for task_id, delay in c.delays.items():
            self._eligible_at[task_id] = now_t + delay
        for kind, duration in c.durations:
            self._durations.setdefault(kind, deque(maxlen=DURATION_SAMPLES)).append(duration)
        for task, executor_id in c.started:
            run = Run(task, executor_id)
            self._running[task.task_id] = run
            assert self._nursery is not None
            self._nursery.start_soon(self._run_attempt, run, name=f"taskqueue attempt {task.task_id}")
        self.wake()

    async def _transact(
        self,
        record: Callable[[Changes], T],
        *,
        catalog: dict[str, dict[str, Any]] | None = None,
        dispatch: bool = False,
    ) -> T:
        """Record a transition with ``record(changes)`` in the next group commit; return what it returned
        once the transaction holding it is committed and applied to memory.

        ``record`` runs on the Trio thread under the engine's lock, must not await, and must change nothing
        but the ``Changes`` it is given (it may be run a second time, alone, if its batch failed to
        commit). ``dispatch`` marks the scheduler's own transition, which goes first in its batch.

        Raises:
            whatever ``record`` raised (nothing of it was written); ``sqlite3.Error`` if its transaction
            could not be committed (nothing of it was written); ``QueueUnavailableError`` if the engine
            stopped first.

        Cancellation: a caller cancelled before its batch started is taken out and nothing is written. Once
        its batch has started, the transition is committed (or fails) regardless, the caller waits for
        that, shielded, and then sees ``trio.Cancelled``: a cancelled submission may therefore have been
        committed, exactly as if its answer had been lost on the way.
        """
        if not self._committer_running:
            raise QueueUnavailableError("the task queue is not running (its engine is not serving)")
        request = _Request(record, catalog, dispatch)
        self._pending.append(request)
        self._pending_work.set()
        try:
            await request.done.wait()
        except trio.Cancelled:
            if not request.taken:
                if request in self._pending:  # (a stopping committer has dropped them all already)
                    self._pending.remove(request)
                raise
            with trio.CancelScope(shield=True):
                await request.done.wait()
            raise
        ok, value = request.outcome
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    async def _serve_commits(self) -> None:
        """The committer: one transaction for everything handed to ``_transact`` since the last one."""
        batch: list[_Request] = []
        try:
            while True:
                await self._pending_work.wait()
                self._pending_work = trio.Event()
                while self._pending:
                    batch = self._take_batch()
                    async with self._lock:
                        # The lock may have been handed over just as the engine was cancelled: a
                        # stopping engine writes nothing more (its runs are already gone).
                        await trio.lowlevel.checkpoint_if_cancelled()
                        await self._commit_batch(batch)
                    batch = []
        finally:
            self._committer_running = False
            stopped = QueueUnavailableError("the task queue stopped before this change was committed")
            for request in [*batch, *self._pending]:
                if not request.done.is_set():
                    request.outcome = (False, stopped)
                    request.done.set()
            self._pending.clear()

    def _take_batch(self) -> list[_Request]:
        """The next batch: the scheduler's dispatch first (it reads the committed state directly), then
        the rest in arrival order; several dispatch requests share one run."""
        taken, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if self._pending:
            self._pending_work.set()
        for request in taken:
            request.taken = True
        dispatches = [r for r in taken if r.dispatch]
        return dispatches + [r for r in taken if not r.dispatch]

    async def _commit_batch(self, batch: list[_Request]) -> None:
        c = self._changes()
        outcomes: list[tuple[bool, Any]] = []
        dispatched: tuple[bool, Any] | None = None
        for request in batch:
            if request.dispatch and dispatched is not None:
                outcomes.append(dispatched)
                continue
            outcome = self._record(c, request)
            if request.dispatch:
                dispatched = outcome
            outcomes.append(outcome)
        writes = c.writes()
        try:
            if writes:
                await self._store.write(writes)
        except sqlite3.Error as exc:
            if len(batch) == 1:
                outcomes = [(False, exc)]
            else:
                logger.warning(
                    "task queue: a group commit of %d transitions failed (%s); committing them one by one",
                    len(batch),
                    exc,
                )
                await self._commit_one_by_one(batch)
                return
        else:
            self.batches += 1
            self._committed(c)
        for request, outcome in zip(batch, outcomes, strict=True):
            request.outcome = outcome
            request.done.set()

    def _record(self, c: Changes, request: _Request) -> tuple[bool, Any]:
        mark = c.mark()
        c.catalog = request.catalog
        try:
            return True, request.record(c)
        except Exception as exc:
            c.rewind(mark)
            return False, exc

    async def _commit_one_by_one(self, batch: list[_Request]) -> None:
        """After a failed group commit: each transition in its own transaction, so that only the ones
        whose own writes fail are refused."""
        for request in batch:
            c = self._changes()
            outcome = self._record(c, request)
            if outcome[0]:
                try:
                    writes = c.writes()
                    if writes:
                        await self._store.write(writes)
                except sqlite3.Error as exc:
                    outcome = (False, exc)
                else:
                    self.batches += 1
                    self._committed(c)
            request.outcome = outcome
            request.done.set()

    async def _catalog(self, need: str | None = None) -> dict[str, dict[str, Any]]:
        """The tool catalog, fetched again when older than ``CATALOG_TTL`` or when it lacks ``need``.

        Raises:
            QueueUnavailableError: the router cannot be asked and no earlier answer is known.
        """
        fresh = trio.current_time() - self._catalog_at < CATALOG_TTL
        if self._catalog_cache is not None and fresh and (need is None or need in self._catalog_cache):
            return self._catalog_cache
        try:
            with trio.fail_after(ROUTER_TIMEOUT):
                catalog = await self._executor.tools()
        except (Exception, trio.TooSlowError) as exc:
            if self._catalog_cache is not None:
                logger.warning("task queue: cannot refresh the tool catalog: %s", exc)
                return self._catalog_cache
            raise QueueUnavailableError(f"cannot read the tool catalog from the router: {exc}") from None
        self._catalog_cache, self._catalog_at = dict(catalog), trio.current_time()
        return self._catalog_cache

    async def _catalog_quietly(self) -> dict[str, dict[str, Any]] | None:
        try:
            return await self._catalog()
        except QueueUnavailableError:
            return None

    async def _refresh_workers(self, max_age: float) -> None:
        """Fetch the live worker processes unless the last answer is younger than ``max_age`` seconds."""
        if trio.current_time() - self._workers_at < max_age:
            return
        try:
            with trio.fail_after(ROUTER_TIMEOUT):
                workers = await self._executor.workers()
        except (Exception, trio.TooSlowError) as exc:
            error = f"cannot list the worker processes: {exc}"
            if error != self._workers_error:  # once per distinct problem, not once a second
                logger.warning("task queue: %s", error)
            self._workers_error = error
            return
        self._workers_cache, self._workers_at, self._workers_error = list(workers), trio.current_time(), None

    def _tool_timeout(self, name: str) -> float | None:
        """The tool's own ``timeout_seconds`` from the last catalog, if it has one."""
        entry = (self._catalog_cache or {}).get(name) or {}
        value = (entry.get("metadata") or {}).get("timeout_seconds")
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    def _executors(self) -> list[ExecutorView]:
        counts: dict[str, int] = {}
        for run in self._running.values():
            counts[run.executor_id] = counts.get(run.executor_id, 0) + 1
        return executor_views(self._workers_cache, self._state.registrations, counts)

    def _queue_order(self) -> list[TaskRecord]:
        return self._state.queued()

    def _next_check(self) -> float:
        if self._state.paused is not None or not self._state.order:
            return math.inf
        now_t = trio.current_time()
        waits = [
            at - now_t
            for task_id, at in self._eligible_at.items()
            if (task := self._state.tasks.get(task_id)) is not None and task.status == "queued"
        ]
        if len(waits) < len(self._state.order) or any(wait <= 0 for wait in waits):
            return RECHECK_INTERVAL
        return max(0.0, min(waits))

    async def _scheduler_loop(self) -> None:
        while True:
            with trio.move_on_after(self._next_check()):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            try:
                await self._dispatch()
            except Exception:
                logger.exception("task queue: dispatching failed; trying again in %g s", RECHECK_INTERVAL)
                await trio.sleep(RECHECK_INTERVAL)

    async def _dispatch(self) -> None:
        """Start every queued task an executor can take now (in the next group commit, first in it)."""
        if self._state.paused is not None or not self._state.order:
            return
        await self._refresh_workers(WORKERS_TTL)
        for attempt in range(len(COMMIT_RETRIES) + 1):
            try:
                await self._transact(self._record_dispatch, dispatch=True)
                return
            except sqlite3.Error as exc:
                if attempt == len(COMMIT_RETRIES):
                    raise QueueUnavailableError(f"database: cannot commit: {exc}") from None
                logger.error("task queue: dispatch commit failed (%s); trying again", exc)
                await trio.sleep(COMMIT_RETRIES[attempt])

    def _record_dispatch(self, c: Changes) -> None:
        """Start what can start now. It reads the committed state directly, so it must go first in its
        batch (``_take_batch`` sees to that)."""
        state = self._state
        if state.paused is not None or not state.order:
            return
        now_t = trio.current_time()
        not_ready: dict[str, str] = {}
        for task_id, at in self._eligible_at.items():
            task = state.tasks.get(task_id)
            if task is not None and task.status == "queued" and at > now_t:
                not_ready[task_id] = f"waiting for its retry delay (until {iso(task.not_before)})"
        tasks = state.tasks
        queued = (tasks[task_id] for _, _, task_id in state.order)
        decided = plan(queued, self._executors(), not_ready, state.queued_types)
        self._reasons = decided.reasons
        for task, executor_id in decided.assignments:
            tr.start_attempt(c, task, executor_id)

    async def _run_attempt(self, run: Run) -> None:
        """Call the tool and record how the attempt ended. Engine cancellation records nothing."""
        task = run.task
        outcome: tuple[str, Any] = ("cancelled", None)
        try:
            try:
                with run.scope:
                    deadline = (
                        task.timeout if task.timeout is not None else self._tool_timeout(task.task_type)
                    )
                    limit = math.inf if deadline is None else deadline + TIMEOUT_GRACE
                    with trio.move_on_after(limit) as guard:
                        result = await self._executor.call_tool(
                            task.task_type,
                            dict(task.payload),
                            timeout=task.timeout,
                            on_progress=functools.partial(self._on_progress, run),
                        )
                        outcome = ("result", result)
                    if guard.cancelled_caught:
                        outcome = ("error", f"no answer from the router {limit:g} s after the call started")
            except ToolCallRefused as exc:
                outcome = ("refused", str(exc))
            except Exception as exc:
                logger.exception("task queue: the executor raised for task %s", task.task_id)
                outcome = ("error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
            if run.scope.cancelled_caught:
                outcome = ("cancelled", None)
            await self._finish_attempt(run, outcome)
        finally:
            if self._running.get(task.task_id) is run:
                del self._running[task.task_id]
            run.done.set()
            self.wake()

    async def _finish_attempt(self, run: Run, outcome: tuple[str, Any]) -> None:
        """Record how an attempt ended (in a group commit; tried again if the disk refuses it)."""
        catalog = await self._catalog_quietly() if run.task.workflow_id else None
        run.finishing = True
        written = 0
        for attempt in range(len(COMMIT_RETRIES) + 1):
            try:
                written = await self._transact(
                    functools.partial(self._record_end, run, outcome), catalog=catalog
                )
                break
            except sqlite3.Error as exc:
                if attempt == len(COMMIT_RETRIES):
                    raise QueueUnavailableError(f"database: cannot commit: {exc}") from None
                logger.error(
                    "task queue: commit failed (%s); trying again in %g s", exc, COMMIT_RETRIES[attempt]
                )
                await trio.sleep(COMMIT_RETRIES[attempt])
        del run.pending_logs[:written]
        if self._running.get(run.task.task_id) is run:
            del self._running[run.task.task_id]

    def _record_end(self, run: Run, outcome: tuple[str, Any], c: Changes) -> int:
        """Record the end of ``run``'s attempt; returns how many of its pending log lines it wrote."""
        lines = list(run.pending_logs)
        for line in lines:
            c.write(rows.add_log(line))
        kind, detail = outcome
        current = c.task(run.task.task_id)
        if current is None or current.status != "running" or current.attempts != run.task.attempts:
            # Ended already (a forced cancel): only the attempt row is left to close.
            c.write(
                rows.finish_attempt(
                    run.task.task_id, run.task.attempts, c.now, "cancelled", "cancelled while running"
                )
            )
        else:
            current = replace(current, progress=run.progress, progress_message=run.message)
            if kind == "cancelled":
                tr.cancel(c, current, run.cancel_reason or "cancelled")
            elif kind == "result" and not detail.get("isError"):
                tr.attempt_succeeded(c, current, detail)
            elif kind == "result":
                message = tr.error_of(detail)
                if message.startswith("server busy"):
                    tr.attempt_busy(c, current, message)
                else:
                    tr.attempt_failed(c, replace(current, result=detail), message)
            elif kind == "refused":
                tr.attempt_failed(c, current, f"refused by the router: {detail}", retryable=False)
            else:
                tr.attempt_failed(c, current, str(detail))
        return len(lines)

    def _on_progress(self, run: Run, progress: float, total: float | None, message: str | None) -> None:
        """The executor's progress callback: never raises, never blocks."""
        try:
            if total is not None and total > 0:
                run.progress = max(0.0, min(100.0, float(progress) / float(total) * 100.0))
            if message is not None and message != run.message and run.logged < PROGRESS_LOG_LIMIT:
                percent = "" if run.progress is None else f" ({run.progress:.0f}%)"
                run.pending_logs.append(
                    LogLine(run.task.task_id, self._clock(), "info", f"progress{percent}: {message}")
                )
                run.logged += 1
            if message is not None:
                run.message = message
            run.dirty = True
        except Exception:  # a malformed report must not break the call
            logger.debug("task queue: ignoring progress report %r/%r", progress, total, exc_info=True)

    async def _flush_loop(self) -> None:
        while True:
            await trio.sleep(FLUSH_INTERVAL)
            await self._flush()

    async def _flush(self) -> None:
        """Write the latest progress and progress messages of running attempts (under the lock, so a
        task's log lines keep their order around its own transitions)."""
        async with self._lock:
            writes: list[rows.Write] = []
            for run in list(self._running.values()):
                if run.finishing:
                    continue
                if run.dirty:
                    writes.append(
                        rows.put_progress(run.task.task_id, run.task.attempts, run.progress, run.message)
                    )
                    run.dirty = False
                writes.extend(rows.add_log(line) for line in run.pending_logs)
                run.pending_logs.clear()
            if writes:
                try:
                    await self._store.write(writes)
                except sqlite3.Error as exc:
                    logger.warning("task queue: cannot write progress: %s", exc)

    async def _find_task(self, task_id: Any) -> TaskRecord:
        check_id(task_id, "task_id", TASK_REF_PATTERN)
        task = self._state.tasks.get(task_id)
        if task is None:
            task = await self._store.read(lambda conn: queries.get_task(conn, task_id))
        if task is None:
            raise NotFoundError(f"task_id: no task {task_id!r}")
        return task

    async def _current(self, task_id: str) -> TaskRecord:
        """The task as committed now: from memory while unfinished, else from the database. Call it
        under the lock to decide on a transition (a record read before taking the lock may be stale)."""
        task = self._state.tasks.get(task_id)
        if task is None:
            task = await self._store.read(lambda conn: queries.get_task(conn, task_id))
        if task is None:
            raise NotFoundError(f"task_id: no task {task_id!r}")
        return task

    async def _queue_info(self) -> tuple[dict[str, int], dict[str, float | None]]:
        """Queue positions (1-based, dispatch order) and estimated start times of the queued tasks."""
        await self._refresh_workers(WORKERS_TTL)
        order = self._queue_order()
        positions = {task.task_id: index + 1 for index, task in enumerate(order)}
        running = [
            (self._state.tasks.get(r.task.task_id, r.task), r.executor_id) for r in self._running.values()
        ]
        estimates = estimate_starts(
            order,
            running,
            self._executors(),
            mean_durations(self._durations),
            self._clock(),
            paused=self._state.paused is not None,
        )
        return positions, estimates

    async def _place(self, task: TaskRecord) -> tuple[dict[str, int], dict[str, float | None]]:
        """Like ``_queue_info``, for one task only: its position comes from the ordered queue and its
        estimate from a simulation of the tasks ahead of it only (none at all while paused)."""
        position = self._state.position(task)
        if position is None:
            return {}, {}
        if self._state.paused is not None:
            return {task.task_id: position}, {task.task_id: None}
        await self._refresh_workers(WORKERS_TTL)
        state = self._state
        ahead = [state.tasks[task_id] for _, _, task_id in state.order[:position]]
        running = [(state.tasks.get(r.task.task_id, r.task), r.executor_id) for r in self._running.values()]
        estimates = estimate_starts(
            ahead, running, self._executors(), mean_durations(self._durations), self._clock(), paused=False
        )
        return {task.task_id: position}, {task.task_id: estimates.get(task.task_id)}

    def _summary(
        self, task: TaskRecord, positions: dict[str, int], estimates: dict[str, float | None]
    ) -> dict[str, Any]:
        run = self._running.get(task.task_id) if task.status == "running" else None
        reason = self._reasons.get(task.task_id)
        if task.status == "queued" and self._state.paused is not None:
            reason = f"the queue is paused: {self._state.paused.get('reason') or 'no reason given'}"
        elif task.status == "queued" and reason is None:
            reason = waiting_reason(task.task_type, self._executors())
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

            def probe(conn: sqlite3.Connection, value: str = candidate) -> bool:
                return exists(conn, value)

            if not await self._store.read(probe):
                return candidate

    async def _find_workflow(self, workflow_id: Any) -> tuple[WorkflowRecord, dict[str, StepRecord]]:
        check_id(workflow_id, "workflow_id")
        workflow = self._state.workflows.get(workflow_id)
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
        await self._refresh_workers(0.0)
        executors = self._executors()
        if worker_id is not None:
            executors = [e for e in executors if e.worker_id == worker_id]
            if not executors:
                raise NotFoundError(
                    f"worker_id: no executor {worker_id!r} (neither a live worker process nor registered)"
                )
        totals = await self._store.read(queries.worker_totals)
        everyone = self._executors()
        views = []
        for executor in executors:
            running_ids = sorted(
                r.task.task_id for r in self._running.values() if r.executor_id == executor.worker_id
            )
            waiting = sum(
                1
                for t in self._state.tasks.values()
                if t.status == "queued"
                and t.task_type in executor.capabilities
                and not any(
                    o.routable and t.task_type in o.capabilities
                    for o in everyone
                    if o.worker_id != executor.worker_id
                )
            )
            registration = self._state.registrations.get(executor.worker_id)
            views.append(
                executor_view(
                    executor,
                    running_task_ids=running_ids,
                    totals=totals.get(executor.worker_id),
                    waiting=waiting,
                    registration=None
                    if registration is None
                    else {
                        "resource_limits": registration.resource_limits,
                        "metadata": registration.metadata,
                        "registered_at": iso(registration.registered_at),
                    },
                )
            )
        return {
            "workers": views,
            "total_workers": len(views),
            "live_workers": sum(1 for v in views if v["live"]),
            "router_error": self._workers_error,
        }
