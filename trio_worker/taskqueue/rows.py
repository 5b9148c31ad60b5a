"""The records as rows: how a record becomes a row and back, and the statements that write rows.

Every function here is pure: it builds a ``Write`` (one SQL statement and its parameters) and touches no
database. ``Changes.writes()`` gathers them for one transaction and the store runs that transaction on its
own thread. Reading rows back into records is ``from_row``, used by ``queries.py``. The statements are
the same for SQLite and PostgreSQL (``?`` placeholders; ``INSERT ... ON CONFLICT`` is in both).

A record's columns are its dataclass fields, in order; the fields in ``_JSON_FIELDS`` are stored as JSON
text (``None`` stays SQL ``NULL`` for those in ``_NULLABLE_JSON``).

Checked writes: a task or workflow is written with the revision it was read at plus one
(``Changes.put_task``), and the upsert changes the row only if it still has the revision before
(``WHERE rev = excluded.rev - 1``). A store that sees one of the ``CHECKED`` statements change no row
fails the transaction with ``StaleError``: someone else changed that row since it was read.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from .db import Write as Write
from .records import Attempt, LogLine, Registration, StepRecord, TaskRecord, WorkflowRecord

T = TypeVar("T")

_JSON_FIELDS = {
    "payload",
    "tags",
    "metadata",
    "result",
    "dependencies",
    "inputs",
    "depends_on",
    "output",
    "capabilities",
    "resource_limits",
    "client",
    "answers",
    "pending",
    "asked",
    "error_object",
}
_NULLABLE_JSON = {"result", "output", "client", "answers", "pending", "asked", "error_object"}
"""JSON fields whose ``None`` is SQL ``NULL`` (the others store ``null`` as JSON text)."""
_BOOL_FIELDS = {"run_again"}


def columns(cls: type[Any]) -> list[str]:
    """The columns of a record's table: its dataclass fields, in order."""
    return [f.name for f in dataclasses.fields(cls)]


def _to_row(record: Any) -> tuple[Any, ...]:
    values = []
    for name in columns(type(record)):
        value = getattr(record, name)
        if name in _JSON_FIELDS:
            value = None if value is None and name in _NULLABLE_JSON else json.dumps(value)
        values.append(value)
    return tuple(values)


def from_row(cls: type[T], row: Any) -> T:
    """The record of class ``cls`` a row of its table holds."""
    kwargs = {}
    for name in columns(cls):
        value = row[name]
        if name in _JSON_FIELDS and value is not None:
            value = json.loads(value)
        elif name in _BOOL_FIELDS:
            value = bool(value)
        kwargs[name] = value
    return cls(**kwargs)


def _insert(table: str, cls: type[Any]) -> str:
    names = columns(cls)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def _upsert(table: str, cls: type[Any], keys: Sequence[str], *, checked: bool = False) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns(cls) if c not in keys)
    where = f" WHERE {table}.rev = excluded.rev - 1" if checked else ""
    return f"{_insert(table, cls)} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}{where}"


_PUT_TASK = _upsert("tasks", TaskRecord, ["task_id"], checked=True)
_INSERT_TASK = _insert("tasks", TaskRecord)
_PUT_WORKFLOW = _upsert("workflows", WorkflowRecord, ["workflow_id"], checked=True)
CHECKED = frozenset({_PUT_TASK, _PUT_WORKFLOW})
"""The statements that must change exactly one row (else the row changed since it was read)."""
_PUT_STEP = _upsert("steps", StepRecord, ["workflow_id", "step_id"])
_PUT_EXECUTOR = _upsert("executors", Registration, ["worker_id"])
_ADD_ATTEMPT = _insert("attempts", Attempt)


def put_task(task: TaskRecord) -> Write:
    """Insert a task's row, or replace it if it still has the revision ``task.rev - 1`` (checked)."""
    return _PUT_TASK, _to_row(task)


def insert_task(task: TaskRecord) -> Write:
    """Insert a new task's row; the store fails with ``DuplicateError`` if its id is taken."""
    return _INSERT_TASK, _to_row(task)


def put_workflow(workflow: WorkflowRecord) -> Write:
    """As ``put_task``, for a workflow (checked)."""
    return _PUT_WORKFLOW, _to_row(workflow)


def put_step(step: StepRecord) -> Write:
    return _PUT_STEP, _to_row(step)


def put_registration(registration: Registration) -> Write:
    return _PUT_EXECUTOR, _to_row(registration)


def delete_registration(worker_id: str) -> Write:
    return "DELETE FROM executors WHERE worker_id = ?", (worker_id,)


def add_attempt(attempt: Attempt) -> Write:
    return _ADD_ATTEMPT, _to_row(attempt)


def add_log(line: LogLine) -> Write:
    return (
        "INSERT INTO task_logs (task_id, at, level, message) VALUES (?, ?, ?, ?)",
        (line.task_id, line.at, line.level, line.message),
    )


def put_progress(task_id: str, attempt: int, progress: float | None, message: str | None) -> Write:
    """The progress of a running attempt; a no-op once that attempt has ended."""
    return (
        "UPDATE tasks SET progress = ?, progress_message = ? "
        "WHERE task_id = ? AND status = 'running' AND attempts = ?",
        (progress, message, task_id, attempt),
    )


def put_setting(key: str, value: Any) -> Write:
    return (
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def delete_tasks(task_ids: Sequence[str]) -> list[Write]:
    """Remove tasks with their attempts and logs."""
    writes: list[Write] = []
    for task_id in task_ids:
        writes.append(("DELETE FROM tasks WHERE task_id = ?", (task_id,)))
        writes.append(("DELETE FROM attempts WHERE task_id = ?", (task_id,)))
        writes.append(("DELETE FROM task_logs WHERE task_id = ?", (task_id,)))
    return writes


def close_open_attempts(task_id: str, ended_at: float, outcome: str, error: str | None) -> Write:
    """End the attempt rows of a task that were still open (a run interrupted by a stop or crash)."""
    return (
        "UPDATE attempts SET ended_at = ?, outcome = ?, error = ? WHERE task_id = ? AND ended_at IS NULL",
        (ended_at, outcome, error, task_id),
    )


def finish_attempt(task_id: str, attempt: int, ended_at: float, outcome: str, error: str | None) -> Write:
    return (
        "UPDATE attempts SET ended_at = ?, outcome = ?, error = ? "
        "WHERE task_id = ? AND attempt = ? AND ended_at IS NULL",
        (ended_at, outcome, error, task_id, attempt),
    )
