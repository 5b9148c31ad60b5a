"""Recovery: how the engine takes up, at start, the work a stop or a crash left in its database.

Queued tasks stay queued. A task that was running is re-queued counting the interrupted run as an
attempt, or failed when it has no retries left; its open attempt row is closed as ``interrupted``. A
protocol task that was running is queued again when its tool may run again (``run_again``), else failed
(see ``protocol_transitions.interrupted``); one in ``input_required`` stays there.
Workflows continue where they were: a pending one starts if its dependencies completed meanwhile, a
running one starts the steps that became ready. A queued task that was waiting for its retry delay keeps
waiting for what is left of it.

Durability: everything recovery changes is one transaction, committed before the engine serves; a crash
during recovery leaves the database as it was, and the next start recovers again. Recovery does not call
the executor (the router may not answer before this worker is READY).

Cancellation: a recovery cancelled before its transaction has changed nothing; once the transaction has
started it completes (see ``Store``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from . import protocol_transitions as ptr
from . import transitions as tr
from .db import Store
from .queries import load_snapshot, workflow_statuses
from .state import Changes, State

logger = logging.getLogger("mcp_supervisor.taskqueue")


def advance_workflows(c: Changes, known: dict[str, str]) -> None:
    """Start what became ready in every unfinished workflow: a pending one whose dependencies completed
    (``known``: the statuses of dependencies that are no longer unfinished), the ready steps of a running
    one."""
    for workflow in list(c.active_workflows()):
        current = c.workflow(workflow.workflow_id)
        if current is None:
            continue
        if current.status == "pending":
            tr.start_workflow_if_ready(c, current, known)
        elif current.status == "running":
            tr.advance_workflow(c, workflow.workflow_id)


@dataclass(slots=True)
class Recovered:
    """What the engine starts from."""

    state: State
    """The unfinished tasks and workflows, the registrations and the pause, as now committed."""
    durations: dict[str, list[float]]
    """Task type -> execution times of its latest successful attempts, oldest first."""
    waits: dict[str, float]
    """Task id -> seconds a queued task must still wait before it may start (its retry delay)."""


async def recover(store: Store, clock: Callable[[], float], rng: random.Random) -> Recovered:
    """Load the unfinished work from ``store`` and settle what the last stop interrupted.

    Raises:
        StoreError: the database could not be read, or refused the recovery's transaction (nothing
            of it was written).
    """
    snapshot = await store.read(load_snapshot)
    state = State.from_snapshot(snapshot)
    pending_dependencies = {
        dependency
        for workflow in state.workflows.values()
        if workflow.status == "pending"
        for dependency in workflow.dependencies
        if dependency not in state.workflows
    }
    known = await store.read(lambda conn: workflow_statuses(conn, pending_dependencies))
    c = Changes(state, clock(), rng=rng, catalog=None)
    for task in list(state.tasks.values()):
        if task.status == "running" and task.origin == ptr.ORIGIN:
            ptr.interrupted(c, task)
        elif task.status == "running":
            tr.interrupted(c, task)
    advance_workflows(c, known)
    await store.write(c.writes())
    c.apply()
    now = clock()
    waits = {
        task.task_id: task.not_before - now
        for task in state.tasks.values()
        if task.status == "queued" and task.not_before is not None and task.not_before > now
    }
    recovered = sum(1 for t in c.tasks.values() if t.status == "queued")
    if c.tasks:
        logger.warning(
            "task queue: recovered %d interrupted task(s): %d re-queued, %d failed",
            len(c.tasks),
            recovered,
            len(c.tasks) - recovered,
        )
    return Recovered(state, snapshot.durations, waits)
