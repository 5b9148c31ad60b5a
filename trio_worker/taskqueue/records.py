"""The task queue's durable objects as plain dataclasses: one row of the database each.

The engine keeps the records of unfinished tasks and workflows in memory, changes a copy, commits the
copy (``rows.put_*``) and only then replaces its in-memory record, so memory is never ahead of the disk.
Times are wall-clock seconds since the epoch (the engine's ``clock``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Backoff = Literal["exponential", "linear"]


@dataclass(slots=True)
class TaskRecord:
    """One task: a deferred tool call and everything that happened to it.

    ``attempts`` counts the times it was started (a run interrupted by a crash counts). ``order_priority``
    and ``order_seq`` place it in the queue; they follow ``priority`` and ``seq`` except after
    ``task_priority(requeue=false)``, which changes the priority but not the place.

    ``origin`` is ``"queue"`` for a task of the 20 tools (``task_submit``, workflow steps) and ``"mcp"``
    for a protocol task (``tasks:create``). A protocol task also keeps what its runs are handed
    (``client``: the request's capabilities and protocol version; ``answers``: key -> ``{"q", "r"}``), what
    it waits for while ``input_required`` (``pending``: key -> input request; ``asked``: key -> digest),
    whether it may run again after a crash (``run_again``) and, when it failed, its JSON-RPC error object
    (``error_object``). ``updated_at`` is the time of its last transition.

    ``rev`` is the revision of the row this record was read as (0: never written); a transition writes
    it only if the row still has that revision (see ``state.Changes``). ``claimed_by`` is the engine that
    started its latest attempt, and ``cancel_requested`` the reason of a cancel that waits for the engine
    running it (a shared store: see ``docs/architecture.md``).
    """

    task_id: str
    seq: int
    task_type: str
    payload: dict[str, Any]
    priority: float
    order_priority: float
    order_seq: int
    tags: list[str]
    timeout: float | None
    max_retries: int
    backoff_factor: float
    backoff: Backoff
    metadata: dict[str, Any]
    status: str
    submitted_at: float
    queued_at: float
    attempts: int = 0
    busy_retries: int = 0
    progress: float | None = None
    progress_message: str | None = None
    worker_id: str | None = None
    not_before: float | None = None
    started_at: float | None = None
    first_started_at: float | None = None
    ended_at: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel_reason: str | None = None
    retry_of: str | None = None
    retry_count: int = 0
    workflow_id: str | None = None
    step_id: str | None = None
    origin: str = "queue"
    client: dict[str, Any] | None = None
    answers: dict[str, Any] | None = None
    pending: dict[str, Any] | None = None
    asked: dict[str, Any] | None = None
    run_again: bool = False
    updated_at: float | None = None
    error_object: dict[str, Any] | None = None
    rev: int = 0
    claimed_by: str | None = None
    cancel_requested: str | None = None


@dataclass(slots=True)
class WorkflowRecord:
    """One workflow: a DAG of steps, each run as a task once its dependencies have completed. ``rev``:
    as ``TaskRecord.rev``; every change of one of its steps writes the workflow too."""

    workflow_id: str
    seq: int
    name: str
    priority: float
    tags: list[str]
    dependencies: list[str]
    metadata: dict[str, Any]
    status: str
    submitted_at: float
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    cancel_reason: str | None = None
    rev: int = 0


@dataclass(slots=True)
class StepRecord:
    """One step of a workflow. ``depends_on`` holds the declared dependencies plus the steps its inputs
    refer to; ``output`` is set when it completed (see ``workflows.output_of``)."""

    workflow_id: str
    step_id: str
    position: int
    action: str
    inputs: dict[str, Any]
    depends_on: list[str]
    timeout: float | None
    max_retries: int
    backoff_factor: float
    backoff: Backoff
    status: str
    task_id: str | None = None
    worker_id: str | None = None
    output: Any = None
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(slots=True)
class Registration:
    """An executor declared with ``worker_register``. With the id of a live worker process it narrows
    that process's capabilities and sets its limit; otherwise it is an executor without a live process."""

    worker_id: str
    capabilities: list[str]
    max_concurrent_tasks: int
    resource_limits: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    registered_at: float = 0.0


@dataclass(slots=True)
class Attempt:
    """One run of a task on one executor. ``outcome``: completed, failed, cancelled, interrupted (the task
    queue stopped while it ran), busy (the server refused it for load; not counted as an attempt) or
    input_required (a protocol task's run that ended asking the client for input)."""

    task_id: str
    attempt: int
    task_type: str
    worker_id: str | None
    started_at: float
    ended_at: float | None = None
    outcome: str | None = None
    error: str | None = None


@dataclass(slots=True)
class LogLine:
    """One line of a task's log: state changes, retries, progress messages, errors."""

    task_id: str
    at: float
    level: str
    message: str
