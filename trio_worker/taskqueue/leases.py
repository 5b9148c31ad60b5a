"""Leases on a shared (PostgreSQL) database: renewing this engine's, taking over the expired ones.

A task an engine starts carries ``claimed_by`` (the engine's id) and ``lease_expires`` (the database's
clock plus ``task_lease_seconds``), written in the claim's own transaction (``scheduler.py``). While the
engine lives it renews every lease it holds every third of that time, in one statement. Every engine
looks every half lease for running tasks whose lease ran out — their engine died, hangs or lost the
database — and settles them in one claim (``FOR UPDATE SKIP LOCKED``, so two engines never settle the
same task) by the recovery rules: a queue task is queued again while it has retries left, else failed;
a protocol task runs again only if its tool is idempotent or read-only, else it fails saying why; a task
whose cancel was requested is cancelled.

Fencing: an engine that could not renew for a whole lease assumes the others took its tasks over and
stops its own runs at once (each settled by the same rules, if it still can be; a later result of a run
that was taken over is refused by the revision check and only its attempt row is closed).

Times are the database's (``DB_NOW``), so the hosts' clocks do not matter.

Cancellation: cancelling ``serve`` stops both loops; a claim that has begun completes first.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from . import protocol_transitions as ptr
from . import transitions as tr
from .committer import Committer
from .db import Db, Store, StoreError
from .mirror import Fetched, Mirror, fetch_workflows
from .records import TaskRecord
from .rows import from_row
from .state import Changes

if TYPE_CHECKING:
    from .runner import Runner

logger = logging.getLogger("mcp_supervisor.taskqueue")

DEFAULT_LEASE_SECONDS = 30.0
"""How long a started task belongs to its engine without a renewal (``task_lease_seconds``)."""
TAKEOVER_BATCH = 200
"""At most this many expired tasks are settled in one transaction."""
MIN_INTERVAL = 0.1
"""The loops never run more often than this (seconds), however short the lease."""


DB_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
"""The database's clock in epoch seconds (leases are measured on it, never on a host's)."""
RENEW = (
    f"UPDATE tasks SET lease_expires = {DB_NOW} + ? WHERE task_id IN (SELECT task_id FROM tasks "
    "WHERE claimed_by = ? AND status = 'running' FOR UPDATE SKIP LOCKED)"
)
"""Rows another transaction is changing right now (this engine ending them, another cancelling them) are
skipped rather than waited for: no lock wait, no deadlock with this engine's own commits; the next
renewal, a third of a lease later, takes them."""
EXPIRED = (
    "SELECT * FROM tasks WHERE status = 'running' AND "
    f"(lease_expires IS NULL OR lease_expires < {DB_NOW}) ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED"
)
LEASE = f"UPDATE tasks SET lease_expires = {DB_NOW} + ? WHERE task_id = ANY(?)"
"""Sets the first lease of the tasks a claim started (in the claim's transaction)."""


@dataclass(slots=True)
class Expired:
    """Running tasks whose lease ran out, locked, with the workflows of the step tasks among them."""

    tasks: list[TaskRecord]
    found: Fetched = field(default_factory=Fetched)


def lock_expired(db: Db, limit: int = TAKEOVER_BATCH) -> Expired:
    """Lock the running tasks whose lease expired (skipping those another engine is settling)."""
    tasks = [from_row(TaskRecord, row) for row in db.execute(EXPIRED, (limit,))]
    found = Fetched(tasks={task.task_id: task for task in tasks})
    workflows = sorted({task.workflow_id for task in tasks if task.workflow_id})
    if workflows:
        found.workflows = fetch_workflows(db, workflows)
    return Expired(tasks, found)


def settle(c: Changes, task: TaskRecord) -> None:
    """Settle a running task its engine no longer holds (see the module docstring): the same outcome and
    messages as the recovery after a crash, and a log line naming the engines."""
    c.log(
        task.task_id,
        f"{task.claimed_by or 'its task queue'} stopped renewing its lease: taken over by {c.owner}",
        "warning",
    )
    if task.cancel_requested is not None:
        tr.cancel(c, task, task.cancel_requested)
    elif task.origin == ptr.ORIGIN:
        ptr.interrupted(c, task)
    else:
        tr.interrupted(c, task)


class Leases:
    """Renews this engine's leases and takes over the expired ones (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        committer: Committer,
        mirror: Mirror,
        runner: Runner,
        *,
        engine_id: str,
        seconds: float,
    ) -> None:
        self.seconds = float(seconds)
        self.taken_over = 0
        """How many tasks this engine took over from others (for tests and diagnostics)."""
        self._store = store
        self._committer = committer
        self._mirror = mirror
        self._runner = runner
        self._engine_id = engine_id
        self._renewed_at = -math.inf

    async def serve(self) -> None:
        """Renew and take over until cancelled. Returns: never returns unless cancelled."""
        self._renewed_at = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_renewals)
            nursery.start_soon(self._serve_takeovers)

    async def _serve_renewals(self) -> None:
        interval = max(MIN_INTERVAL, self.seconds / 3)
        while True:
            await trio.sleep(interval)
            try:
                await self.renew()
            except StoreError as exc:
                logger.warning("task queue: cannot renew the leases of its running tasks: %s", exc)
            if trio.current_time() - self._renewed_at > self.seconds:
                self.fence()

    async def renew(self) -> None:
        """Push back the lease of every task this engine runs.

        Raises:
            StoreError: the database could not be reached.
        """
        await self._store.write([(RENEW, (self.seconds, self._engine_id))])
        self._renewed_at = trio.current_time()

    def fence(self) -> None:
        """Stop every run of this engine: its leases ran out, the others may own those tasks now."""
        for run in list(self._runner.running.values()):
            if not run.finishing and not run.abandoned:
                logger.warning(
                    "task queue: stopping task %s: this engine could not renew its lease for %g s",
                    run.task.task_id,
                    self.seconds,
                )
                run.abandoned = True
                run.scope.cancel()

    async def _serve_takeovers(self) -> None:
        interval = max(MIN_INTERVAL, self.seconds / 2)
        while True:
            try:
                while await self.take_over() >= TAKEOVER_BATCH:
                    await trio.lowlevel.checkpoint()
            except StoreError as exc:
                logger.warning("task queue: cannot look for expired leases: %s", exc)
            await trio.sleep(interval)

    async def take_over(self) -> int:
        """Settle the running tasks whose lease expired; returns how many.

        Raises:
            StoreError: the database refused (nothing of this batch was written).
        """
        settled: list[str] = []

        def record(c: Changes, expired: Expired) -> None:
            self._mirror.absorb(expired.found)
            for task in expired.tasks:
                current = c.task(task.task_id)
                if current is not None and current.status == "running":
                    settle(c, current)
                    settled.append(task.task_id)

        await self._committer.claim(lock_expired, record)
        if settled:
            self.taken_over += len(settled)
            logger.warning(
                "task queue: took over %d task(s) whose engine stopped renewing its lease: %s",
                len(settled),
                ", ".join(settled[:10]) + (" ..." if len(settled) > 10 else ""),
            )
        return len(settled)
