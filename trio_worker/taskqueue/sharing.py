"""What an engine adds when its database is shared with other engines (PostgreSQL; docs/architecture.md).

``Sharing`` puts together the mirror (``mirror.py``), the leases (``leases.py``) and the claims of queued
tasks, and decides what this engine does when its mirror learns that another engine changed a task:

- a task this engine runs that was cancelled, finished or taken over elsewhere: its call is cancelled in
  its worker (its end is then recorded as the row now says: only its attempt row is closed);
- a task this engine runs whose cancel was requested elsewhere (``cancel_requested``): its call is
  cancelled with that reason, and its end recorded ``cancelled`` as for a local ``task_cancel``;
- a protocol task whose wire status changed: the engine's ``on_protocol_change`` hook hears of it, so a
  listen stream on this supervisor sees tasks that run on another;
- anything changed: the scheduler is woken, and so is whoever waits in ``wait_changed``.

Claims (``claim_queued``): in one transaction, the pause setting ``FOR SHARE`` (a pause committed by any
engine stops this claim, and a pause waits for a claim in progress), then the queued rows this engine's
executors can take now, in queue order, ``FOR UPDATE SKIP LOCKED`` (rows another engine is claiming are
skipped, never waited for); the scheduling plan assigns them, they are recorded running with this
engine's lease, committed and started.

Cancellation: as the committer's claims (shielded once begun); ``serve`` runs until cancelled.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from . import transitions as tr
from .committer import Committer
from .db import Db, SharedStore, StoreError, Write
from .errors import QueueUnavailableError
from .leases import LEASE, TAKEOVER_BATCH, Leases
from .mirror import Changed, Fetched, Mirror, fetch_workflows, loaded_state
from .protocol_view import WIRE_STATUS
from .queries import Snapshot, load_snapshot, workflow_statuses
from .records import TaskRecord
from .recovery import advance_workflows
from .rows import from_row
from .runner import Runner
from .scheduling import ExecutorView, plan
from .state import Changes, State

logger = logging.getLogger("mcp_supervisor.taskqueue")

CLAIM = (
    "SELECT * FROM tasks WHERE status = 'queued' AND task_type = ANY(?) "
    "AND (not_before IS NULL OR not_before <= ?) "
    "ORDER BY order_priority DESC, order_seq, task_id LIMIT ? FOR UPDATE SKIP LOCKED"
)
PAUSED = "SELECT value FROM settings WHERE key = 'paused' FOR SHARE"


@dataclass(slots=True)
class Claimed:
    """What a claim locked: the queued tasks (in queue order) with their workflows, and the pause."""

    tasks: list[TaskRecord]
    found: Fetched


def lock_queued(db: Db, types: Sequence[str], now: float, limit: int) -> Claimed:
    """Lock up to ``limit`` queued, eligible tasks of these types (skipping rows others hold), unless the
    queue is paused (then none)."""
    row = db.execute(PAUSED).fetchone()
    paused = json.loads(row[0]) if row is not None else None
    found = Fetched(settings={"paused": paused})
    if paused is not None:
        return Claimed([], found)
    tasks = [from_row(TaskRecord, r) for r in db.execute(CLAIM, (list(types), now, limit))]
    found.tasks = {task.task_id: task for task in tasks}
    workflows = sorted({task.workflow_id for task in tasks if task.workflow_id})
    if workflows:
        found.workflows = fetch_workflows(db, workflows)
    return Claimed(tasks, found)


def engine_id() -> str:
    """A new engine id: ``host/pid/random``, unique among the engines sharing a database (every engine
    has one; it is ``claimed_by`` of the tasks it starts)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class Sharing:
    """The mirror, the leases and the claims of an engine on a shared database (see the module)."""

    def __init__(
        self,
        store: SharedStore,
        state: State,
        committer: Committer,
        runner: Runner,
        *,
        engine_id: str,
        lease_seconds: float,
        clock: Callable[[], float],
        wake: Callable[[], None],
        protocol_changed: Callable[[TaskRecord], None] | None,
        forget: Callable[[str], None],
    ) -> None:
        """``wake()`` wakes the scheduler; ``protocol_changed(task)`` tells of a protocol task whose wire
        status changed elsewhere; ``forget(task_id)`` drops what the engine cached of a changed task."""
        self.engine_id = engine_id
        self.lease_seconds = float(lease_seconds)
        self._store = store
        self._state = state
        self._committer = committer
        self._runner = runner
        self._clock = clock
        self._wake = wake
        self._protocol_changed = protocol_changed
        self._forget = forget
        self._changed = trio.Event()
        self.mirror = Mirror(store, state, committer.lock, self._refreshed)
        self.leases = Leases(
            store, committer, self.mirror, runner, engine_id=engine_id, seconds=lease_seconds
        )

    async def start(self) -> Snapshot:
        """Listen first, then load the mirror (so that no change falls between the two); returns the
        snapshot it loaded (for the measured durations).

        Raises:
            QueueUnavailableError: the listener cannot connect. StoreError: the snapshot cannot be read.
        """
        await self._store.listen(self.mirror.deliver)
        snapshot = await self._store.read(load_snapshot)
        self._state.restore(loaded_state(snapshot))
        return snapshot

    async def serve(self) -> None:
        """The mirror's refreshes and the leases. Returns: never returns unless cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.mirror.serve)
            nursery.start_soon(self.leases.serve)

    async def settle_expired(self) -> None:
        """Take over, before serving, every task whose lease already ran out (an engine that starts
        after a crash settles what the crash left at once, as SQLite's recovery does). A failure is
        logged: the leases' loop tries again."""
        try:
            while await self.leases.take_over() >= TAKEOVER_BATCH:
                pass
        except (StoreError, QueueUnavailableError) as exc:
            logger.warning("task queue: cannot take over expired leases at start: %s", exc)

    async def advance_workflows(
        self, changes: Callable[[dict[str, dict[str, Any]] | None], Changes], catalog: dict[str, Any] | None
    ) -> None:
        """Start the steps and workflows that became ready while no engine watched (at start, as
        recovery does on SQLite). A failure is logged: the next transition of each workflow advances
        it anyway."""

        async def advance() -> None:
            state = self._state
            waiting = {
                dependency
                for workflow in state.workflows.values()
                if workflow.status == "pending"
                for dependency in workflow.dependencies
                if dependency not in state.workflows
            }
            known = await self._store.read(lambda conn: workflow_statuses(conn, waiting))
            c = changes(catalog)
            advance_workflows(c, known)
            await self._committer.commit(c)

        try:
            await self._committer.decide(advance)
        except (StoreError, QueueUnavailableError) as exc:
            logger.warning("task queue: cannot advance the workflows at start: %s", exc)

    def announce(self, c: Changes) -> list[Write]:
        """The notifications that tell the other engines what ``c`` changed (added to its transaction)."""
        tasks, workflows, settings = c.changed_ids()
        return self._store.announce(tasks, workflows, settings)

    async def wait_changed(self, timeout: float) -> None:
        """Return when the mirror next learns of a change made elsewhere, or after ``timeout`` seconds."""
        with trio.move_on_after(timeout):
            await self._changed.wait()

    # -- claims --

    async def claim_queued(self, executors: Callable[[], list[ExecutorView]]) -> None:
        """Claim and start what this engine's executors can take now (see the module), first in the next
        group commit (several calls meanwhile share one claim, as dispatches do).

        Raises:
            QueueUnavailableError: the database refused the claim after the committer's retries.
        """
        views = executors()
        open_ = [e for e in views if e.routable and e.free > 0]
        types = sorted(set().union(*(e.capabilities for e in open_)))
        slots = sum(e.free for e in open_)
        if not types:
            return
        now = self._clock()

        def record(c: Changes, claimed: Claimed) -> None:
            self.mirror.absorb(claimed.found)
            started = []
            for task, executor_id in plan(claimed.tasks, views, {}).assignments:
                current = c.task(task.task_id)
                if current is not None and current.status == "queued":
                    tr.start_attempt(c, current, executor_id)
                    started.append(task.task_id)
            if started:
                c.write((LEASE, (self.lease_seconds, started)))

        await self._committer.transact(
            record, dispatch=True, background=True, lock=lambda db: lock_queued(db, types, now, slots)
        )

    # -- what the mirror learned --

    def _refreshed(self, changed: Changed, settings_changed: bool) -> None:
        running = self._runner.running
        for task_id, (old, task) in changed.items():
            self._forget(task_id)
            run = running.get(task_id)
            if run is not None and not run.finishing:
                lost = (
                    task is None
                    or task.status != "running"
                    or task.attempts != run.task.attempts
                    or task.claimed_by != self.engine_id
                )
                if lost:
                    ended = task is not None and task.status == "cancelled"
                    run.cancel_reason = (task.cancel_reason if ended and task else None) or (
                        "taken over by another task queue"
                    )
                    run.scope.cancel()
                elif task is not None and task.cancel_requested is not None:
                    run.cancel_reason = task.cancel_requested
                    run.scope.cancel()
            if (
                task is not None
                and self._protocol_changed is not None
                and task.origin == "mcp"
                and (
                    WIRE_STATUS.get(old.status) != WIRE_STATUS.get(task.status)
                    if old is not None
                    else task.status != "queued"  # its creation is not a change (as for local tasks)
                )
            ):
                self._protocol_changed(task)
        self._wake()
        self._changed.set()
        self._changed = trio.Event()
