"""The scheduler: a loop that starts every queued task an executor can take, whenever that may change.

It wakes on every event that can let a task start (a submit, an attempt ending, a resume, a
registration, a retry delay running out) and once every ``RECHECK_INTERVAL`` while tasks wait for an
executor to appear. What to start is decided by the pure functions of ``scheduling.py``; this module feeds
them the engine's state and keeps what they need between rounds: when each delayed task may start, why
each waiting task waits, and the measured execution times of each task type.

Concurrency and durability: a dispatch is a transition of the group commit, first in its batch (it reads
the committed state directly, not through its ``Changes``). The attempts it starts are committed as
running before the runner calls their tools.

Cancellation: cancelling ``serve`` ends the loop. A dispatch whose batch has started is committed
regardless (see ``Committer.transact``).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

import trio

from . import transitions as tr
from .committer import Committer
from .queries import DURATION_SAMPLES
from .router_cache import RouterCache
from .runner import Runner
from .scheduling import ExecutorView, executor_views, plan
from .state import Changes, State
from .views import iso

logger = logging.getLogger("mcp_supervisor.taskqueue")

RECHECK_INTERVAL = 1.0
"""While queued tasks wait for an executor, the scheduler looks at the worker processes this often."""


class Scheduler:
    """Starts queued tasks on executors (see the module docstring)."""

    def __init__(self, state: State, committer: Committer, router: RouterCache, runner: Runner) -> None:
        self.eligible_at: dict[str, float] = {}
        """Task id -> the Trio time before which a queued task may not start (its retry delay)."""
        self.reasons: dict[str, str] = {}
        """Task id -> why the last plan left that queued task waiting."""
        self.durations: dict[str, deque[float]] = {}
        """Task type -> the execution times of its latest successful attempts."""
        self.rounds = 0
        """How many times the loop has looked at the queue (for tests and diagnostics)."""
        self._state = state
        self._committer = committer
        self._router = router
        self._runner = runner
        self._wakeup = trio.Event()
        self.held = False
        """Start nothing more: the worker is draining (a reload or a stop) and lets what runs finish."""
        self.claim: Callable[[Callable[[], list[ExecutorView]]], Awaitable[None]] | None = None
        """On a shared database, how queued tasks are claimed from it (``Sharing.claim_queued``) instead
        of being planned from memory."""

    def wake(self) -> None:
        """Ask the scheduler to look at the queue again soon."""
        self._wakeup.set()

    def restore(self, durations: Mapping[str, Sequence[float]], waits: Mapping[str, float]) -> None:
        """Start from what recovery found: measured durations, and seconds each delayed task still waits."""
        self.durations = {kind: deque(values, maxlen=DURATION_SAMPLES) for kind, values in durations.items()}
        now_t = trio.current_time()
        self.eligible_at = {task_id: now_t + wait for task_id, wait in waits.items()}
        self.reasons = {}

    def committed(self, c: Changes) -> None:
        """Take note of a committed transition: tasks that left the queue, new retry delays, durations."""
        now_t = trio.current_time()
        for task in c.tasks.values():
            if task.status != "queued":
                self.eligible_at.pop(task.task_id, None)
                self.reasons.pop(task.task_id, None)
        for task_id, delay in c.delays.items():
            self.eligible_at[task_id] = now_t + delay
        for kind, duration in c.durations:
            self.durations.setdefault(kind, deque(maxlen=DURATION_SAMPLES)).append(duration)

    def executors(self) -> list[ExecutorView]:
        """Every executor as it stands now: worker processes, registrations and what each is running."""
        return executor_views(self._router.workers, self._state.registrations, self._runner.counts())

    async def serve(self) -> None:
        """The loop. Returns: never returns unless cancelled; a failed dispatch is logged and retried."""
        while True:
            with trio.move_on_after(self._next_check()):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            try:
                await self.dispatch()
            except Exception:
                logger.exception("task queue: dispatching failed; trying again in %g s", RECHECK_INTERVAL)
                await trio.sleep(RECHECK_INTERVAL)
            self.rounds += 1

    async def dispatch(self) -> None:
        """Start every queued task an executor can take now (in the next group commit, first in it).

        Raises:
            QueueUnavailableError: the disk refused the dispatch after the retries, or the engine stopped.

        Cancellation: as ``Committer.transact``.
        """
        if self.held or self._state.paused is not None or not self._state.order:
            return
        await self._router.refresh_workers()
        if self.claim is not None:
            await self.claim(self.executors)
            return
        await self._committer.transact(self._record_dispatch, dispatch=True, background=True)

    def _record_dispatch(self, c: Changes) -> None:
        """Start what can start now. It reads the committed state directly, so it must go first in its
        batch (``Committer`` sees to that)."""
        state = self._state
        if self.held or state.paused is not None or not state.order:
            return
        now_t = trio.current_time()
        not_ready: dict[str, str] = {}
        for task_id, at in self.eligible_at.items():
            task = state.tasks.get(task_id)
            if task is not None and task.status == "queued" and at > now_t:
                not_ready[task_id] = f"waiting for its retry delay (until {iso(task.not_before)})"
        tasks = state.tasks
        queued = (tasks[task_id] for _, _, task_id in state.order)
        decided = plan(queued, self.executors(), not_ready, state.queued_types)
        self.reasons = decided.reasons
        for task, executor_id in decided.assignments:
            tr.start_attempt(c, task, executor_id)

    def _next_check(self) -> float:
        """Seconds until the loop must look again without being woken: never while nothing is queued."""
        if self._state.paused is not None or not self._state.order:
            return math.inf
        now_t = trio.current_time()
        waits = [
            at - now_t
            for task_id, at in self.eligible_at.items()
            if (task := self._state.tasks.get(task_id)) is not None and task.status == "queued"
        ]
        if len(waits) < len(self._state.order) or any(wait <= 0 for wait in waits):
            return RECHECK_INTERVAL
        return max(0.0, min(waits))
