"""The task-queue service of the ``trio-queue`` worker: the engine, and the executor it runs tasks with.

The engine (``trio_worker.taskqueue``) owns the SQLite database; it runs a task as a tool call through the
router like any client, from this worker's own REQUEST frames (``call_id`` 0), so any worker of the right
runtime executes it, and the tool's progress comes back as REQUEST_PROGRESS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from shared.errors import ClientRequestError
from shared.statedir import state_directory
from shared.worker import ProgressCallback, WorkerCore

DEFAULT_DB_NAME = "tasks.db"


class RouterExecutor:
    """The engine's ``Executor``, over the router (see ``trio_worker.taskqueue.executor``)."""

    def __init__(self, worker: WorkerCore[Any]) -> None:
        self._worker = worker

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None,
        on_progress: ProgressCallback,
        task_input: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        from .taskqueue import ToolCallRefused

        params: dict[str, Any] = {"name": name, "arguments": arguments, "timeout": timeout}
        if task_input is not None:
            params["task"] = task_input
        try:
            return await self._worker.request(0, "tools/call", params, on_progress=on_progress)
        except ClientRequestError as exc:
            raise ToolCallRefused(str(exc), exc.code, exc.data) from None

    async def tools(self) -> dict[str, dict[str, Any]]:
        answer = await self._worker.request(0, "supervisor/tools", {})
        tools: dict[str, dict[str, Any]] = answer.get("tools", {})
        return tools

    async def workers(self) -> list[dict[str, Any]]:
        answer = await self._worker.request(0, "supervisor/workers", {})
        workers: list[dict[str, Any]] = answer.get("workers", [])
        return workers


def default_db_path() -> Path:
    """``DEFAULT_DB_NAME`` in the state directory (``shared.statedir.state_directory``)."""
    return state_directory() / DEFAULT_DB_NAME


async def start_task_queue(worker: WorkerCore[Any], nursery: trio.Nursery, db_path: str | None) -> None:
    """Open the database, recover, and start the engine in ``nursery``; returns once it is serving."""
    from .taskqueue import Engine, set_engine

    path = Path(db_path) if db_path else default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = Engine(path, RouterExecutor(worker))
    set_engine(engine)
    await nursery.start(engine.serve)
