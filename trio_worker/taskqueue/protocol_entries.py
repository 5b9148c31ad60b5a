"""The six internal entries of the ``tasks`` kind, served by the ``trio-queue`` worker process.

The front calls four of them for the MCP tasks extension (SEP-2663) like any entry, with a CALL frame of
kind ``tasks`` (refs ``tasks:create``, ``tasks:get``, ``tasks:update``, ``tasks:cancel``); the
supervisor polls the fifth, ``tasks:stats``, for /status, /metrics and ``top``
(``supervisor/queue_status.py``), and the sixth, ``tasks:workflows``, for the ``/ui`` page's workflow
graphs (``supervisor/dashboard.py``). No front lists them. Each hands its arguments to the engine of this
process (``protocol_ops.ProtocolOperations``, ``queue_ops.QueueOperations.live_stats``,
``workflow_ops.WorkflowOperations.recent_workflows``) and returns its dict unchanged. An unknown or expired task is a ``ClientRequestError`` -32602, which the worker turns
into an ERROR frame with that code; any other failure is an ERROR -32603.

Importing this module registers them (``tools.py`` does, so they exist exactly where the 20 queue tools
do).
"""

from __future__ import annotations

from typing import Any

from shared.kinds import internal_entry
from shared.metadata import ToolMetadata

from .current import get_engine

TIMEOUT = 30.0
"""Seconds one call of these entries may take (a commit waits for one group commit)."""
STATS_TIMEOUT = 2.0
"""Seconds a ``tasks:stats`` call may take: it reads memory only, so anything longer is a stuck worker."""


async def create(
    tool: str,
    arguments: dict[str, Any],
    client: dict[str, Any],
    answers: dict[str, Any] | None = None,
    run_again: bool = False,
) -> dict[str, Any]:
    """Create a protocol task (committed before the answer); returns its ``Task``."""
    return await get_engine().protocol_create(tool, arguments, client, answers or {}, run_again)


async def get(task_id: str, owner: str | None = None) -> dict[str, Any]:
    """The ``DetailedTask`` of a protocol task; ``owner``: the asking principal's subject (None without
    authorization; another principal's task is unknown)."""
    return await get_engine().protocol_get(task_id, owner)


async def update(task_id: str, input_responses: dict[str, Any], owner: str | None = None) -> dict[str, Any]:
    """Answer a task's input requests; ``{}`` once committed."""
    return await get_engine().protocol_update(task_id, input_responses, owner)


async def cancel(task_id: str, owner: str | None = None) -> dict[str, Any]:
    """Cancel a protocol task; ``{}`` once committed."""
    return await get_engine().protocol_cancel(task_id, owner)


async def stats() -> dict[str, Any]:
    """The queue's figures from memory (``QueueOperations.live_stats``)."""
    return get_engine().live_stats()


async def workflows(limit: int = 8) -> dict[str, Any]:
    """The ``limit`` newest workflows with their graphs (``WorkflowOperations.recent_workflows``)."""
    return await get_engine().recent_workflows(limit)


ENTRIES = tuple(
    internal_entry(
        "tasks",
        func.__name__,
        func,
        ToolMetadata(
            name=f"tasks.{func.__name__}",
            runtime="trio",
            timeout_seconds=STATS_TIMEOUT if func is stats else TIMEOUT,
            read_only=func in (get, stats, workflows),
        ),
    )
    for func in (create, get, update, cancel, stats, workflows)
)
"""The entries' metadata, in the order the contract lists them."""
