"""The wire shapes of protocol tasks (SEP-2663): ``Task`` (what ``tasks:create`` answers) and
``DetailedTask`` (what ``tasks:get`` answers and the change notifications carry), built from a record.

Statuses: ``queued`` and ``running`` are ``working``; ``input_required`` carries ``inputRequests`` (the
pending map); ``completed`` carries ``result`` (the stored CallToolResult without its related-task
``_meta``); ``failed`` carries ``error`` (a JSON-RPC error object) and its message as ``statusMessage``;
``cancelled`` carries the reason as ``statusMessage``. There is never a ``requestState``, and no
``resultType``: the front adds it.

Times are ISO 8601 UTC with milliseconds (``views.iso``). ``ttlMs`` counts from creation: a task is kept
``task_ttl`` seconds after it ends and never deleted while unfinished, so for an unfinished task it is
``now - createdAt + task_ttl`` and for an ended one ``endedAt - createdAt + task_ttl``; ``None`` when
``task_ttl`` is 0 (kept forever).
"""

from __future__ import annotations

from typing import Any

from .models import TERMINAL_TASK_STATUSES
from .records import TaskRecord
from .views import iso

POLL_INTERVAL_MS = 1000
"""The ``pollIntervalMs`` every task suggests."""
RELATED_TASK = "io.modelcontextprotocol/related-task"
"""The ``_meta`` key a stored result must not carry into ``tasks/get``."""

WIRE_STATUS = {
    "queued": "working",
    "running": "working",
    "input_required": "input_required",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}


def ttl_ms(task: TaskRecord, now: float, ttl: float) -> int | None:
    """``ttlMs`` of ``task`` at ``now`` under a ``ttl`` of seconds (0: kept forever, ``None``)."""
    if ttl <= 0:
        return None
    end = task.ended_at if task.ended_at is not None else now
    return max(0, round((end - task.submitted_at + ttl) * 1000))


def expired(task: TaskRecord, now: float, ttl: float) -> bool:
    """True once an ended task has outlived ``ttl`` (even if the sweep has not deleted it yet)."""
    return ttl > 0 and task.ended_at is not None and now >= task.ended_at + ttl


def task_view(
    task: TaskRecord,
    *,
    now: float,
    ttl: float,
    status_message: str | None = None,
    updated_at: float | None = None,
) -> dict[str, Any]:
    """The ``Task`` fields of ``task``; ``status_message`` is a working task's live progress message and
    ``updated_at`` the time of its latest progress, when later than its last transition."""
    last = task.updated_at if task.updated_at is not None else task.submitted_at
    if updated_at is not None and updated_at > last:
        last = updated_at
    view: dict[str, Any] = {
        "taskId": task.task_id,
        "status": WIRE_STATUS.get(task.status, "working"),
        "createdAt": iso(task.submitted_at),
        "lastUpdatedAt": iso(last),
        "ttlMs": ttl_ms(task, now, ttl),
        "pollIntervalMs": POLL_INTERVAL_MS,
    }
    if status_message is not None and task.status not in TERMINAL_TASK_STATUSES:
        view["statusMessage"] = status_message
    return view


def detailed_view(
    task: TaskRecord,
    *,
    now: float,
    ttl: float,
    status_message: str | None = None,
    updated_at: float | None = None,
) -> dict[str, Any]:
    """The ``DetailedTask`` of ``task``: the ``Task`` fields plus what its status carries."""
    view = task_view(task, now=now, ttl=ttl, status_message=status_message, updated_at=updated_at)
    if task.status == "input_required":
        view["inputRequests"] = dict(task.pending or {})
    elif task.status == "completed":
        view["result"] = strip_related_task(task.result or {"content": [], "isError": False})
    elif task.status == "failed":
        error = task.error_object or {"code": -32603, "message": task.error or "the task failed"}
        view["error"] = error
        view["statusMessage"] = error.get("message", "")
    elif task.status == "cancelled":
        view["statusMessage"] = task.cancel_reason or "cancelled"
    return view


def strip_related_task(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without ``_meta["io.modelcontextprotocol/related-task"]`` (and without an empty
    ``_meta`` left behind); the stored result is not changed."""
    meta = result.get("_meta")
    if not isinstance(meta, dict) or RELATED_TASK not in meta:
        return result
    stripped = dict(result)
    rest = {key: value for key, value in meta.items() if key != RELATED_TASK}
    if rest:
        stripped["_meta"] = rest
    else:
        del stripped["_meta"]
    return stripped
