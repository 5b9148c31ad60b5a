"""The reads of the task queue's database: each a plain function of a connection (``db.Db``), run on a
thread of the store through ``Store.read`` (``await store.read(lambda conn: get_task(conn, task_id))``).

They only read: every change goes through ``rows.py`` statements in a ``Store.write`` transaction. A read
sees the last committed state (SQLite's WAL readers and PostgreSQL's snapshots never wait for a writer).

The SQL is the same on SQLite and PostgreSQL except in three places, each a helper here: a list
parameter (``in_list``: ``json_each`` / ``= ANY``), "has all these tags" (``_tags_filter``) and the hour
of a time (``_hour``). Counting a condition is ``SUM(CASE ...)`` (portable); every subquery in ``FROM``
has an alias (PostgreSQL 15 wants one).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

from .db import POSTGRESQL, Db
from .records import Attempt, LogLine, Registration, StepRecord, TaskRecord, WorkflowRecord
from .rows import from_row


@dataclasses.dataclass(slots=True)
class Snapshot:
    """What the engine loads at start: everything unfinished, and what it needs to schedule."""

    tasks: list[TaskRecord]
    workflows: list[WorkflowRecord]
    steps: list[StepRecord]
    registrations: list[Registration]
    settings: dict[str, Any]
    next_seq: int
    durations: dict[str, list[float]]
    open_attempts: dict[str, Attempt]


@dataclasses.dataclass(slots=True)
class TaskQuery:
    """Filters of ``task_list``; ``None`` means no filter."""

    statuses: list[str] | None = None
    worker_id: str | None = None
    tags: list[str] | None = None
    priority_min: float | None = None
    limit: int = 100
    offset: int = 0


@dataclasses.dataclass(slots=True)
class WorkflowQuery:
    statuses: list[str] | None = None
    peer: str | None = None
    tags: list[str] | None = None
    limit: int = 50
    offset: int = 0


DURATION_SAMPLES = 50
"""How many of a task type's latest successful runs its average execution time is taken over."""


def count_if(condition: str) -> str:
    """SQL counting the rows where ``condition`` holds (``NULL`` over no rows, as ``SUM``)."""
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


_COUNT_COMPLETED = count_if("status = 'completed'")
_COUNT_FAILED = count_if("status = 'failed'")
_COUNT_CANCELLED = count_if("status = 'cancelled'")
_OUTCOME_COMPLETED = "outcome = 'completed'"
_OUTCOME_FAILED = "outcome IN ('failed', 'interrupted')"
_OUTCOME_CANCELLED = "outcome = 'cancelled'"


def in_list(conn: Db, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """The clause ``column`` is one of ``values`` (one parameter, whatever their number), and its
    parameters."""
    if conn.dialect == POSTGRESQL:
        return f"{column} = ANY(?)", (list(values),)
    return f"{column} IN (SELECT value FROM json_each(?))", (json.dumps(list(values)),)


def _tags_filter(conn: Db, table: str) -> str:
    """The clause "``table.tags`` holds every tag of the JSON list parameter"."""
    if conn.dialect == POSTGRESQL:
        return f"{table}.tags::jsonb @> ?::jsonb"
    return (
        "NOT EXISTS (SELECT 1 FROM json_each(?) AS wanted "
        f"WHERE wanted.value NOT IN (SELECT value FROM json_each({table}.tags)))"
    )


def _hour(conn: Db, column: str) -> str:
    """The UTC hour (whole hours since the epoch) of an epoch-seconds ``column``."""
    if conn.dialect == POSTGRESQL:
        return f"CAST(FLOOR({column} / 3600) AS BIGINT)"
    return f"CAST({column} / 3600 AS INTEGER)"


def load_snapshot(conn: Db, *, history: bool = True) -> Snapshot:
    """Everything unfinished, the registrations and the settings; with ``history``, also the next
    submission number, the measured durations and the open attempts (the scans of the whole tables a
    start needs, and a reload of a shared engine's mirror does not)."""
    tasks = [
        from_row(TaskRecord, row)
        for row in conn.execute(
            "SELECT * FROM tasks WHERE status IN ('queued', 'running', 'input_required') ORDER BY seq"
        )
    ]
    workflows = [
        from_row(WorkflowRecord, row)
        for row in conn.execute("SELECT * FROM workflows WHERE status IN ('pending', 'running') ORDER BY seq")
    ]
    steps = [
        from_row(StepRecord, row)
        for row in conn.execute(
            "SELECT s.* FROM steps s JOIN workflows w USING (workflow_id) "
            "WHERE w.status IN ('pending', 'running') ORDER BY s.workflow_id, s.position"
        )
    ]
    registrations = [from_row(Registration, row) for row in conn.execute("SELECT * FROM executors")]
    settings = {row["key"]: json.loads(row["value"]) for row in conn.execute("SELECT * FROM settings")}
    if not history:
        return Snapshot(tasks, workflows, steps, registrations, settings, 1, {}, {})
    next_seq = 1 + max(
        conn.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks").fetchone()[0],
        conn.execute("SELECT COALESCE(MAX(order_seq), 0) FROM tasks").fetchone()[0],
        conn.execute("SELECT COALESCE(MAX(seq), 0) FROM workflows").fetchone()[0],
    )
    durations: dict[str, list[float]] = {}
    for row in conn.execute(
        "SELECT task_type, ended_at - started_at AS d FROM ("
        " SELECT task_type, started_at, ended_at, ROW_NUMBER() OVER ("
        "  PARTITION BY task_type ORDER BY ended_at DESC) AS n"
        " FROM attempts WHERE outcome = 'completed') AS recent WHERE n <= ? ORDER BY ended_at",
        (DURATION_SAMPLES,),
    ):
        durations.setdefault(row["task_type"], []).append(max(0.0, row["d"]))
    open_attempts = {
        row["task_id"]: from_row(Attempt, row)
        for row in conn.execute("SELECT * FROM attempts WHERE ended_at IS NULL")
    }
    return Snapshot(tasks, workflows, steps, registrations, settings, next_seq, durations, open_attempts)


def get_task(conn: Db, task_id: str) -> TaskRecord | None:
    row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else from_row(TaskRecord, row)


def task_exists(conn: Db, task_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone() is not None


def workflow_exists(conn: Db, workflow_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM workflows WHERE workflow_id = ?", (workflow_id,)).fetchone() is not None
    )


def _filters(
    conn: Db, table: str, statuses: list[str] | None, tags: list[str] | None
) -> tuple[list[str], list[Any]]:
    """The clauses (and their parameters) of a status filter and an all-of-these-tags filter on ``table``."""
    clauses: list[str] = []
    params: list[Any] = []
    if statuses:
        clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if tags:
        clauses.append(_tags_filter(conn, table))
        params.append(json.dumps(tags))
    return clauses, params


def _where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _task_filters(conn: Db, query: TaskQuery) -> tuple[str, list[Any]]:
    clauses, params = _filters(conn, "tasks", query.statuses, query.tags)
    if query.worker_id is not None:
        clauses.append("worker_id = ?")
        params.append(query.worker_id)
    if query.priority_min is not None:
        clauses.append("priority >= ?")
        params.append(query.priority_min)
    return _where(clauses), params


def list_tasks(conn: Db, query: TaskQuery) -> tuple[list[TaskRecord], int]:
    """Tasks matching ``query``, newest first, and how many match in all."""
    where, params = _task_filters(conn, query)
    total = conn.execute(f"SELECT COUNT(*) FROM tasks{where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM tasks{where} ORDER BY seq DESC LIMIT ? OFFSET ?", [*params, query.limit, query.offset]
    )
    return [from_row(TaskRecord, row) for row in rows], int(total)


def matching_task_ids(conn: Db, statuses: Sequence[str]) -> list[str]:
    rows = conn.execute(
        f"SELECT task_id FROM tasks WHERE status IN ({', '.join('?' * len(statuses))}) ORDER BY seq",
        list(statuses),
    )
    return [row[0] for row in rows]


def attempt_counts(conn: Db, task_ids: Sequence[str]) -> dict[str, int]:
    """How many attempts each of these tasks had (tasks that were deleted are left out)."""
    if not task_ids:
        return {}
    rows = conn.execute(
        f"SELECT task_id, attempts FROM tasks WHERE task_id IN ({', '.join('?' * len(task_ids))})",
        list(task_ids),
    )
    return {row[0]: int(row[1]) for row in rows}


def task_logs(conn: Db, task_id: str, limit: int = 500) -> list[LogLine]:
    """The latest ``limit`` log lines of a task, oldest first."""
    rows = conn.execute(
        "SELECT * FROM (SELECT * FROM task_logs WHERE task_id = ? ORDER BY id DESC LIMIT ?) AS latest "
        "ORDER BY id",
        (task_id, limit),
    )
    return [LogLine(row["task_id"], row["at"], row["level"], row["message"]) for row in rows]


def task_attempts(conn: Db, task_id: str) -> list[Attempt]:
    rows = conn.execute("SELECT * FROM attempts WHERE task_id = ? ORDER BY id", (task_id,))
    return [from_row(Attempt, row) for row in rows]


def status_counts(conn: Db) -> dict[str, int]:
    return {row[0]: row[1] for row in conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")}


def averages(conn: Db, since: float | None = None) -> dict[str, Any]:
    """Average wait (submission to first start) and execution time (successful runs), with sample sizes."""
    started = "" if since is None else " AND first_started_at >= ?"
    ended = "" if since is None else " AND ended_at >= ?"
    window = () if since is None else (since,)
    wait = conn.execute(
        "SELECT AVG(first_started_at - submitted_at), COUNT(*) FROM tasks "
        f"WHERE first_started_at IS NOT NULL{started}",
        window,
    ).fetchone()
    execution = conn.execute(
        f"SELECT AVG(ended_at - started_at), COUNT(*) FROM attempts WHERE outcome = 'completed'{ended}",
        window,
    ).fetchone()
    return {
        "average_wait_time": wait[0],
        "wait_samples": wait[1],
        "average_execution_time": execution[0],
        "execution_samples": execution[1],
    }


def finished_since(conn: Db, since: float) -> dict[str, int]:
    """How many tasks reached each terminal state at or after ``since``."""
    rows = conn.execute(
        "SELECT status, COUNT(*) FROM tasks WHERE ended_at >= ? "
        "AND status IN ('completed', 'failed', 'cancelled') GROUP BY status",
        (since,),
    )
    return {row[0]: row[1] for row in rows}


def first_activity(conn: Db) -> float | None:
    """The earliest submission still in the database (throughput windows do not reach before it)."""
    value = conn.execute(
        "SELECT MIN(t) FROM (SELECT MIN(submitted_at) AS t FROM tasks "
        "UNION ALL SELECT MIN(started_at) FROM attempts) AS firsts"
    ).fetchone()[0]
    return None if value is None else float(value)


def hourly(conn: Db, since: float) -> list[dict[str, Any]]:
    """Per hour since ``since`` (UTC hours, oldest first): finished tasks per status and average times."""
    rows = conn.execute(
        f"SELECT {_hour(conn, 'ended_at')} AS hour, "
        f"{_COUNT_COMPLETED} AS completed, {_COUNT_FAILED} AS failed, {_COUNT_CANCELLED} AS cancelled, "
        "AVG(CASE WHEN first_started_at IS NOT NULL THEN first_started_at - submitted_at END) AS wait, "
        "AVG(CASE WHEN status = 'completed' THEN ended_at - started_at END) AS execution "
        "FROM tasks WHERE ended_at >= ? GROUP BY hour ORDER BY hour",
        (since,),
    )
    return [dict(row) for row in rows]


def by_task_type(conn: Db) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"SELECT task_type, COUNT(*) AS total, {_COUNT_COMPLETED} AS completed, "
        f"{_COUNT_FAILED} AS failed, {_COUNT_CANCELLED} AS cancelled, "
        "AVG(CASE WHEN status = 'completed' THEN ended_at - started_at END) AS execution "
        "FROM tasks GROUP BY task_type ORDER BY task_type"
    )
    return [dict(row) for row in rows]


def worker_totals(conn: Db) -> dict[str, dict[str, Any]]:
    """Per executor: finished attempts by outcome and the average successful execution time."""
    rows = conn.execute(
        f"SELECT worker_id, {count_if(_OUTCOME_COMPLETED)} AS completed, "
        f"{count_if(_OUTCOME_FAILED)} AS failed, {count_if(_OUTCOME_CANCELLED)} AS cancelled, "
        "AVG(CASE WHEN outcome = 'completed' THEN ended_at - started_at END) AS execution "
        "FROM attempts WHERE worker_id IS NOT NULL AND ended_at IS NOT NULL GROUP BY worker_id"
    )
    return {row["worker_id"]: dict(row) for row in rows}


def get_workflow(conn: Db, workflow_id: str) -> tuple[WorkflowRecord, list[StepRecord]] | None:
    row = conn.execute("SELECT * FROM workflows WHERE workflow_id = ?", (workflow_id,)).fetchone()
    if row is None:
        return None
    return from_row(WorkflowRecord, row), _steps_of(conn, workflow_id)


def _steps_of(conn: Db, workflow_id: str) -> list[StepRecord]:
    steps = conn.execute("SELECT * FROM steps WHERE workflow_id = ? ORDER BY position", (workflow_id,))
    return [from_row(StepRecord, step) for step in steps]


def workflow_statuses(conn: Db, workflow_ids: Iterable[str]) -> dict[str, str]:
    ids = list(workflow_ids)
    if not ids:
        return {}
    rows = conn.execute(
        f"SELECT workflow_id, status FROM workflows WHERE workflow_id IN ({', '.join('?' * len(ids))})", ids
    )
    return {row[0]: row[1] for row in rows}


def list_workflows(
    conn: Db, query: WorkflowQuery
) -> tuple[list[tuple[WorkflowRecord, list[StepRecord]]], int]:
    """Workflows matching ``query``, newest first, each with its steps, and how many match in all."""
    clauses, params = _filters(conn, "workflows", query.statuses, query.tags)
    if query.peer is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM steps s WHERE s.workflow_id = workflows.workflow_id AND s.worker_id = ?)"
        )
        params.append(query.peer)
    where = _where(clauses)
    total = conn.execute(f"SELECT COUNT(*) FROM workflows{where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM workflows{where} ORDER BY seq DESC LIMIT ? OFFSET ?",
        [*params, query.limit, query.offset],
    ).fetchall()
    result = []
    for row in rows:
        workflow = from_row(WorkflowRecord, row)
        result.append((workflow, _steps_of(conn, workflow.workflow_id)))
    return result, int(total)
