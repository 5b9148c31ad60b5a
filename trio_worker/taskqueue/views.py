"""The JSON shapes the tools answer with, built from records.

Times are ISO 8601 UTC strings with milliseconds (``2025-11-25T23:21:05.123Z``); durations are seconds.
A value that is not known is ``null`` — never a made-up number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .records import Attempt, LogLine, Registration, StepRecord, TaskRecord, WorkflowRecord
from .scheduling import ExecutorView
from .sizes import clipped


def iso(timestamp: float | None) -> str | None:
    """``2025-11-25T23:21:05.123Z`` for a wall-clock time, ``None`` for ``None``."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds(start: float | None, end: float | None) -> float | None:
    """``end - start`` rounded to microseconds, or ``None`` when either is unknown."""
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 6)


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def page_view(name: str, items: list[dict[str, Any]], total: int, offset: int) -> dict[str, Any]:
    """One page of a list answer: ``items`` under ``name``, with ``total_count`` (every match),
    ``returned_count``, ``offset`` and ``has_more``."""
    return {
        name: items,
        "total_count": total,
        "returned_count": len(items),
        "offset": offset,
        "has_more": offset + len(items) < total,
    }


def task_summary(
    task: TaskRecord,
    *,
    position: int | None,
    estimate: float | None,
    reason: str | None,
    progress: float | None,
    progress_message: str | None,
) -> dict[str, Any]:
    """One task as ``task_list`` shows it."""
    return {
        "task_id": task.task_id,
        "task_type": task.task_type,
        "status": task.status,
        "priority": task.priority,
        "progress": None if progress is None else round(progress, 2),
        "progress_message": progress_message,
        "worker_id": task.worker_id,
        "attempts": task.attempts,
        "max_retries": task.max_retries,
        "tags": list(task.tags),
        "submitted_at": iso(task.submitted_at),
        "start_time": iso(task.started_at),
        "end_time": iso(task.ended_at),
        "queue_position": position,
        "estimated_start_time": iso(estimate) if task.status == "queued" else None,
        "next_attempt_at": iso(task.not_before) if task.status == "queued" else None,
        "waiting_reason": reason if task.status == "queued" else None,
        "error": task.error if task.status != "completed" else None,
        "cancel_reason": task.cancel_reason,
        "retry_of": task.retry_of,
        "retry_count": task.retry_count,
        "workflow_id": task.workflow_id,
        "step_id": task.step_id,
        "origin": task.origin,
    }


def task_detail(task: TaskRecord, summary: dict[str, Any]) -> dict[str, Any]:
    """One task as ``task_status`` shows it: the summary plus what was submitted (clipped when large:
    ``sizes.clipped``)."""
    whole = f"task_result(task_id={task.task_id!r}, include_payload=true)"
    return {
        **summary,
        "payload": clipped(task.payload, whole),
        "timeout": task.timeout,
        "retry_policy": {
            "max_retries": task.max_retries,
            "backoff_factor": task.backoff_factor,
            "backoff": task.backoff,
        },
        "metadata": task.metadata,
        "first_start_time": iso(task.first_started_at),
    }


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "worker_id": attempt.worker_id,
        "start_time": iso(attempt.started_at),
        "end_time": iso(attempt.ended_at),
        "execution_time": seconds(attempt.started_at, attempt.ended_at),
        "outcome": attempt.outcome or "running",
        "error": attempt.error,
    }


def log_view(line: LogLine) -> dict[str, Any]:
    return {"time": iso(line.at), "level": line.level, "message": line.message}


def executor_view(
    executor: ExecutorView,
    *,
    running_task_ids: list[str],
    totals: dict[str, Any] | None,
    waiting: int,
    registration: dict[str, Any] | None,
) -> dict[str, Any]:
    """One executor as ``worker_status`` shows it."""
    totals = totals or {}
    view: dict[str, Any] = {
        "worker_id": executor.worker_id,
        "kind": executor.kind,
        "live": executor.live,
        "registered": executor.registered,
        "runtime": executor.runtime,
        "pid": executor.pid,
        "state": executor.state if executor.live else "no live process",
        "capabilities": sorted(executor.capabilities),
        "max_concurrent_tasks": executor.max_concurrent,
        "running_tasks": len(running_task_ids),
        "running_task_ids": running_task_ids,
        "available_slots": executor.free if executor.routable else 0,
        "in_flight": executor.in_flight,
        "queued_tasks_only_it_can_run": waiting,
        "tasks_completed": int(totals.get("completed") or 0),
        "tasks_failed": int(totals.get("failed") or 0),
        "tasks_cancelled": int(totals.get("cancelled") or 0),
        "average_execution_time": rounded(totals.get("execution")),
    }
    if registration is not None:
        view.update(registration)
    if not executor.live:
        view["note"] = (
            "registered, but no live worker process has this id: tasks only it can run stay queued "
            "until one appears"
        )
    return view


def step_view(
    step: StepRecord, task: TaskRecord | None, progress: float | None, attempts: int | None, now: float
) -> dict[str, Any]:
    """One workflow step; its status follows its task while that is unfinished."""
    status = step.status
    if task is not None and step.status in ("queued", "running"):
        status = task.status
    end = step.ended_at if step.ended_at is not None else (now if status == "running" else None)
    return {
        "step_id": step.step_id,
        "action": step.action,
        "status": status,
        "depends_on": list(step.depends_on),
        "task_id": step.task_id,
        "worker_id": step.worker_id,
        "progress": 100.0 if status == "completed" else (None if progress is None else round(progress, 2)),
        "attempts": task.attempts if task is not None else attempts,
        "start_time": iso(step.started_at),
        "end_time": iso(step.ended_at),
        "execution_time": seconds(step.started_at, end),
        "error": step.error,
    }


def workflow_summary(workflow: WorkflowRecord, steps: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """One workflow as ``workflow_list`` shows it (``steps`` are ``step_view`` dicts)."""
    counts: dict[str, int] = {}
    for step in steps:
        counts[step["status"]] = counts.get(step["status"], 0) + 1
    total = len(steps)
    progress = (
        sum(100.0 if s["status"] == "completed" else (s["progress"] or 0.0) for s in steps) / total
        if total
        else 0.0
    )
    end = (
        workflow.ended_at
        if workflow.ended_at is not None
        else (now if workflow.status == "running" else None)
    )
    return {
        "workflow_id": workflow.workflow_id,
        "name": workflow.name,
        "status": workflow.status,
        "priority": workflow.priority,
        "tags": list(workflow.tags),
        "dependencies": list(workflow.dependencies),
        "step_count": total,
        "step_counts": counts,
        "progress": round(progress, 2),
        "submitted_at": iso(workflow.submitted_at),
        "start_time": iso(workflow.started_at),
        "end_time": iso(workflow.ended_at),
        "execution_time": seconds(workflow.started_at, end),
        "error": workflow.error,
        "cancel_reason": workflow.cancel_reason,
    }


def workers_view(
    executors: list[ExecutorView],
    everyone: list[ExecutorView],
    running: list[tuple[str, str]],
    queued: list[TaskRecord],
    registrations: dict[str, Registration],
    totals: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """``worker_status``'s entries for ``executors`` (among ``everyone``): ``running`` is (task id,
    executor id) of the attempts in progress, ``queued`` the queued tasks (each counted as waiting for
    an executor when no other routable one could take it), ``totals`` the history by executor."""
    views = []
    for executor in executors:
        running_ids = sorted(task_id for task_id, on in running if on == executor.worker_id)
        waiting = sum(
            1
            for t in queued
            if t.task_type in executor.capabilities
            and not any(
                o.routable and t.task_type in o.capabilities
                for o in everyone
                if o.worker_id != executor.worker_id
            )
        )
        registration = registrations.get(executor.worker_id)
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
    return views
