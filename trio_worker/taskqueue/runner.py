"""The runners: one Trio task per attempt in progress, calling its tool and recording how it ended.

Concurrency: each attempt runs in its own task in the runner's nursery (inside the engine's), under a
cancel scope that ``task_cancel`` and ``workflow_cancel`` use. An attempt is started only by a committed
transition that recorded it running (``Changes.started``), so a task never runs without its attempt being
on disk first.

Durability: the end of an attempt is a transition of the group commit (``Committer.transact``); one the
disk refuses is tried again a few times (``COMMIT_RETRIES``). Progress is not an acknowledged state: it
is kept in memory and written at most ``FLUSH_INTERVAL`` late, under the commit lock, so that a task's log
lines keep their order around its own transitions.

Cancellation: cancelling ``serve`` (the engine) stops every attempt without writing — their calls are
cancelled in their workers, and the next start recovers them. Cancelling one attempt's scope records it
cancelled (with ``Run.cancel_reason``).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from . import protocol_transitions as ptr
from . import rows
from . import transitions as tr
from .committer import Committer
from .db import Store, StoreError
from .executor import Executor, ToolCallRefused
from .leases import settle
from .records import LogLine, TaskRecord
from .router_cache import RouterCache
from .state import Changes

logger = logging.getLogger("mcp_supervisor.taskqueue")

FLUSH_INTERVAL = 0.5
"""Progress of running tasks reaches the database at most this late (it is not an acknowledged state)."""
TIMEOUT_GRACE = 5.0
"""A call the router has not answered this long after its deadline (the task's timeout, else the tool's
``timeout_seconds``) is abandoned as failed: a lost answer must not keep a task running forever."""
PROGRESS_LOG_LIMIT = 200
"""At most this many progress messages per attempt go to the task's log."""

Outcome = tuple[str, Any]
"""How an attempt ended: ``("result", reply)`` (a CallToolResult, or a protocol task's ``input_required``
reply), ``("refused", ToolCallRefused)``, ``("error", message)``, ``("cancelled", None)`` or
``("interrupted", None)`` (stopped because this engine lost its lease)."""


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
    """Its end is being committed, with its pending log lines (``flush`` leaves them alone)."""
    percent: float | None = None
    """The latest percentage the tool gave with a total (``None`` while it gave none)."""
    notified: str | None = None
    """The status message ``on_change`` was last called with (protocol tasks)."""
    changed_at: float | None = None
    """When its progress last changed (the engine's clock)."""
    abandoned: bool = False
    """Stopped because this engine lost its lease (``leases.py``): settled as interrupted, not cancelled."""

    def status_message(self) -> str | None:
        """The tool's latest progress message, with its percentage when it gave a total: ``copying (40%)``."""
        if self.message is None:
            return None
        return self.message if self.percent is None else f"{self.message} ({self.percent:.0f}%)"


class Runner:
    """The attempts in progress (``running``, by task id) and the tasks that run them.

    ``wake()`` is called whenever an attempt has stopped, so that the scheduler can use its place.
    """

    def __init__(
        self,
        executor: Executor,
        committer: Committer,
        router: RouterCache,
        store: Store,
        *,
        clock: Callable[[], float],
        wake: Callable[[], None],
        on_change: Callable[[Run], None] | None = None,
    ) -> None:
        """``on_change(run)`` is called, at most every ``FLUSH_INTERVAL``, for a running protocol task whose
        status message changed."""
        self.running: dict[str, Run] = {}
        self._on_change = on_change
        self._executor = executor
        self._committer = committer
        self._router = router
        self._store = store
        self._clock = clock
        self._wake = wake
        self._nursery: trio.Nursery | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the nursery the attempts run in and write their progress every ``FLUSH_INTERVAL``.

        Returns: never returns unless cancelled; ``task_status.started()`` once ``start`` may be called.

        Cancellation: every attempt is cancelled and nothing more is written.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    await trio.sleep(FLUSH_INTERVAL)
                    await self.flush()
        finally:
            self._nursery = None
            self.running.clear()

    def start(self, task: TaskRecord, executor_id: str) -> None:
        """Run an attempt that was committed as started (``task`` is the running task). A runner that has
        stopped (the engine is being cancelled while the commit finished) starts nothing: the attempt stays
        running in the database, as after a crash, for the next engine to settle."""
        if self._nursery is None:
            return
        run = Run(task, executor_id)
        self.running[task.task_id] = run
        self._nursery.start_soon(self._run_attempt, run, name=f"taskqueue attempt {task.task_id}")

    def counts(self) -> dict[str, int]:
        """How many attempts each executor is running."""
        counts: dict[str, int] = {}
        for run in self.running.values():
            counts[run.executor_id] = counts.get(run.executor_id, 0) + 1
        return counts

    async def _run_attempt(self, run: Run) -> None:
        """Call the tool and record how the attempt ended. Engine cancellation records nothing."""
        task = run.task
        outcome: Outcome = ("cancelled", None)
        try:
            try:
                with run.scope:
                    deadline = (
                        task.timeout
                        if task.timeout is not None
                        else self._router.tool_timeout(task.task_type)
                    )
                    limit = math.inf if deadline is None else deadline + TIMEOUT_GRACE
                    with trio.move_on_after(limit) as guard:
                        result = await self._executor.call_tool(
                            task.task_type,
                            dict(task.payload),
                            timeout=task.timeout,
                            on_progress=functools.partial(self._on_progress, run),
                            task_input=task_input(task),
                        )
                        outcome = ("result", result)
                    if guard.cancelled_caught:
                        outcome = ("error", f"no answer from the router {limit:g} s after the call started")
            except ToolCallRefused as exc:
                outcome = ("refused", exc)
            except Exception as exc:
                logger.exception("task queue: the executor raised for task %s", task.task_id)
                outcome = ("error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
            if run.scope.cancelled_caught:
                outcome = ("interrupted", None) if run.abandoned else ("cancelled", None)
            await self._finish_attempt(run, outcome)
        finally:
            if self.running.get(task.task_id) is run:
                del self.running[task.task_id]
            run.done.set()
            self._wake()

    async def _finish_attempt(self, run: Run, outcome: Outcome) -> None:
        """Record how an attempt ended (in a group commit; tried again if the disk refuses it)."""
        catalog = await self._router.catalog_quietly() if run.task.workflow_id else None
        run.finishing = True
        written = await self._committer.transact(
            functools.partial(record_end, run, outcome), catalog=catalog, background=True
        )
        del run.pending_logs[:written]
        if self.running.get(run.task.task_id) is run:
            del self.running[run.task.task_id]

    def _on_progress(self, run: Run, progress: float, total: float | None, message: str | None) -> None:
        """The executor's progress callback: never raises, never blocks."""
        try:
            if total is not None and total > 0:
                run.progress = max(0.0, min(100.0, float(progress) / float(total) * 100.0))
                run.percent = run.progress
            if message is not None and message != run.message and run.logged < PROGRESS_LOG_LIMIT:
                percent = "" if run.progress is None else f" ({run.progress:.0f}%)"
                run.pending_logs.append(
                    LogLine(run.task.task_id, self._clock(), "info", f"progress{percent}: {message}")
                )
                run.logged += 1
            if message is not None:
                run.message = message
            run.dirty = True
            run.changed_at = self._clock()
        except Exception:  # a malformed report must not break the call
            logger.debug("task queue: ignoring progress report %r/%r", progress, total, exc_info=True)

    async def flush(self) -> None:
        """Write the latest progress and progress messages of running attempts (under the commit lock,
        so a task's log lines keep their order around its own transitions). A write the disk refuses is
        logged and dropped: progress is not an acknowledged state."""
        async with self._committer.lock:
            writes: list[rows.Write] = []
            for run in list(self.running.values()):
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
                except StoreError as exc:
                    logger.warning("task queue: cannot write progress: %s", exc)
        if self._on_change is not None:
            for run in list(self.running.values()):
                if run.task.origin == ptr.ORIGIN and not run.finishing:
                    message = run.status_message()
                    if message != run.notified:
                        run.notified = message
                        self._on_change(run)


def record_end(run: Run, outcome: Outcome, c: Changes) -> int:
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
        if kind == "interrupted":
            settle(c, current)
        elif current.origin == ptr.ORIGIN:
            _record_protocol_end(c, current, run, outcome)
        elif kind == "cancelled":
            tr.cancel(c, current, run.cancel_reason or "cancelled")
        elif kind == "result" and not detail.get("isError"):
            tr.attempt_succeeded(c, current, detail)
        elif kind == "result":
            message = tr.error_of(detail)
            if tr.held_back(message):
                tr.attempt_busy(c, current, message)
            else:
                tr.attempt_failed(c, replace(current, result=detail), message)
        elif kind == "refused":
            tr.attempt_failed(c, current, f"refused by the router: {detail}", retryable=False)
        else:
            tr.attempt_failed(c, current, str(detail))
    return len(lines)


def _record_protocol_end(c: Changes, task: TaskRecord, run: Run, outcome: Outcome) -> None:
    """How a protocol task's run ended (see ``protocol_transitions``)."""
    kind, detail = outcome
    if kind == "cancelled":
        tr.cancel(c, task, run.cancel_reason or "cancelled")
    elif kind == "result":
        ptr.run_returned(c, task, detail)
    elif kind == "refused":
        ptr.run_failed(c, task, detail.code, str(detail), detail.data)
    else:
        ptr.run_failed(c, task, ptr.INTERNAL_ERROR, str(detail))


def task_input(task: TaskRecord) -> dict[str, Any] | None:
    """What a run of a protocol task is handed (``Executor.call_tool``'s ``task_input``); ``None`` for a
    queue task."""
    if task.origin != ptr.ORIGIN:
        return None
    return {"client": task.client or {}, "answers": task.answers or {}}
