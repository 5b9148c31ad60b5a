"""Retention: deleting what has been finished long enough, so the database does not grow without bound.

Two settings decide (seconds; 0 keeps forever):

- ``task_ttl``: a protocol task (``origin = "mcp"``) is deleted ``task_ttl`` after it ended (its
  ``ttlMs``); an unfinished one never is;
- ``task_retention``: a finished standalone task of the 20 queue tools, and a finished workflow with its
  steps and their tasks, are deleted ``task_retention`` after they ended.

A task goes with its attempts and log lines. The engine sweeps once at start and then every
``sweep_interval`` seconds, in batches of ``SWEEP_BATCH`` rows, each batch one transaction under the commit
lock (so a sweep never interleaves with a transition; only finished rows are deleted, and finished rows
are not in the engine's memory).

Cancellation: a batch whose transaction has started completes (see ``Store``); the next sweep takes up
the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from .db import Db, Store, Write
from .queries import in_list

SWEEP_BATCH = 500
"""At most this many tasks (and this many workflows) are deleted in one transaction."""
SWEEP_INTERVAL_MAX = 60.0
SWEEP_INTERVAL_MIN = 1.0

_FINISHED = "('completed', 'failed', 'cancelled')"


def sweep_interval(task_ttl: float, task_retention: float) -> float | None:
    """Seconds between sweeps: ``min(60, ttl / 4)`` over the shorter of the two (at least 1 s); ``None``
    when both keep forever."""
    ttls = [ttl for ttl in (task_ttl, task_retention) if ttl > 0]
    if not ttls:
        return None
    return max(SWEEP_INTERVAL_MIN, min(SWEEP_INTERVAL_MAX, min(ttls) / 4))


@dataclass(slots=True)
class Expired:
    """One batch of what may be deleted: task ids (workflow step tasks included) and workflow ids."""

    tasks: list[str]
    workflows: list[str]


def find_expired(
    conn: Db, now: float, task_ttl: float, task_retention: float, limit: int = SWEEP_BATCH
) -> Expired:
    """The next batch of expired rows (a read, on the database thread)."""
    tasks: list[str] = []
    workflows: list[str] = []
    if task_ttl > 0:
        tasks += [
            row[0]
            for row in conn.execute(
                "SELECT task_id FROM tasks WHERE origin = 'mcp' AND ended_at <= ? "
                f"AND status IN {_FINISHED} LIMIT ?",
                (now - task_ttl, limit),
            )
        ]
    if task_retention > 0:
        cutoff = now - task_retention
        tasks += [
            row[0]
            for row in conn.execute(
                "SELECT task_id FROM tasks WHERE origin = 'queue' AND workflow_id IS NULL AND ended_at <= ? "
                f"AND status IN {_FINISHED} LIMIT ?",
                (cutoff, limit),
            )
        ]
        workflows = [
            row[0]
            for row in conn.execute(
                f"SELECT workflow_id FROM workflows WHERE ended_at <= ? AND status IN {_FINISHED} LIMIT ?",
                (cutoff, limit),
            )
        ]
        if workflows:
            clause, params = in_list(conn, "workflow_id", workflows)
            tasks += [row[0] for row in conn.execute(f"SELECT task_id FROM tasks WHERE {clause}", params)]
    return Expired(tasks, workflows)


def delete_writes(conn: Db, expired: Expired) -> list[Write]:
    """The statements that delete one batch: tasks with their attempts and logs, workflows with steps
    (``conn``: only its dialect is used)."""
    writes: list[Write] = []
    if expired.tasks:
        clause, params = in_list(conn, "task_id", expired.tasks)
        for table in ("task_logs", "attempts", "tasks"):
            writes.append((f"DELETE FROM {table} WHERE {clause}", params))
    if expired.workflows:
        clause, params = in_list(conn, "workflow_id", expired.workflows)
        for table in ("steps", "workflows"):
            writes.append((f"DELETE FROM {table} WHERE {clause}", params))
    return writes


def _batch(conn: Db, now: float, task_ttl: float, task_retention: float) -> tuple[Expired, list[Write]]:
    found = find_expired(conn, now, task_ttl, task_retention)
    return found, delete_writes(conn, found)


async def sweep(
    store: Store, lock: trio.Lock, now: float, task_ttl: float, task_retention: float
) -> list[str]:
    """Delete every row expired at ``now``, batch by batch; returns the ids of the deleted tasks.

    Raises:
        StoreError: the database refused a batch (the batches before it are deleted).
    """
    deleted: list[str] = []
    while True:
        async with lock:
            found, writes = await store.read(lambda conn: _batch(conn, now, task_ttl, task_retention))
            if not found.tasks and not found.workflows:
                return deleted
            await store.write(writes)
        deleted += found.tasks
        await trio.lowlevel.checkpoint()
