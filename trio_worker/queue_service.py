"""The task-queue service of the ``trio-queue`` worker: the engine, and the executor it runs tasks with.

The engine (``trio_worker.taskqueue``) owns the SQLite database, or works on a PostgreSQL database it may
share with the queue workers of other supervisors; it runs a task as a tool call through the
router like any client, from this worker's own REQUEST frames (``call_id`` 0), so any worker of the right
runtime executes it, and the tool's progress comes back as REQUEST_PROGRESS.

Protocol task changes (``Engine(on_protocol_change=...)``) go to the router as fire-and-forget
``supervisor/task_changed`` requests (``{"task": DetailedTask}``), sent by one background task: the engine
only puts them in a bounded buffer (``CHANGE_BUFFER``; beyond it they are dropped, a client polling with
``tasks/get`` still sees every state), so a slow router never holds up a commit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from shared.dburl import is_url
from shared.errors import ClientRequestError
from shared.launch import WorkerOptions
from shared.statedir import state_directory
from shared.worker import ProgressCallback, WorkerCore

logger = logging.getLogger("mcp_supervisor.taskqueue")

DEFAULT_DB_NAME = "tasks.db"
CHANGE_BUFFER = 1000
"""At most this many protocol task changes wait to be sent to the router; more are dropped."""


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


class ChangeForwarder:
    """Sends protocol task changes to the router, one at a time, from its own task (see the module)."""

    def __init__(self, worker: WorkerCore[Any], size: int = CHANGE_BUFFER) -> None:
        self._worker = worker
        self._send, self._receive = trio.open_memory_channel[dict[str, Any]](size)
        self.dropped = 0
        """How many changes were dropped because the buffer was full."""

    def __call__(self, task: dict[str, Any]) -> None:
        """The engine's hook: never blocks, never raises."""
        try:
            self._send.send_nowait(task)
        except trio.WouldBlock:
            self.dropped += 1
        except trio.ClosedResourceError:
            pass

    async def serve(self) -> None:
        """Send what the hook buffered; returns: never, unless cancelled. A failed send is logged at debug."""
        async for task in self._receive:
            try:
                await self._worker.request(0, "supervisor/task_changed", {"task": task})
            except Exception as exc:
                logger.debug("task queue: could not send a task change: %s", exc)


class QueueStartError(Exception):
    """The task queue cannot start (its database is held by another queue, or cannot be opened); the
    message is one line."""


async def start_task_queue(worker: WorkerCore[Any], nursery: trio.Nursery, options: WorkerOptions) -> None:
    """Open the database, recover, and start the engine (and its change forwarder) in ``nursery``; returns
    once it is serving.

    Raises:
        QueueStartError: the database is held by another task queue or cannot be opened.
    """
    from .taskqueue import Engine, set_engine
    from .taskqueue.errors import QueueUnavailableError

    database: str | Path
    if options.task_db is not None and is_url(options.task_db):
        database = options.task_db  # the password, if any, is in PGPASSWORD (see shared.dburl)
    else:
        database = Path(options.task_db) if options.task_db else default_db_path()
        database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    forwarder = ChangeForwarder(worker)
    settings: dict[str, Any] = {}
    if options.task_lease_seconds is not None:
        settings["lease_seconds"] = options.task_lease_seconds
    if options.task_ttl is not None:
        settings["task_ttl"] = options.task_ttl
    if options.task_retention is not None:
        settings["task_retention"] = options.task_retention
    if options.step_max_bytes is not None:
        settings["step_max_bytes"] = options.step_max_bytes
    engine = Engine(database, RouterExecutor(worker), on_protocol_change=forwarder, **settings)
    set_engine(engine)
    worker.on_drain.append(engine.hold)  # a reload or a stop lets the attempts that run finish
    nursery.start_soon(forwarder.serve)
    try:
        await nursery.start(engine.serve)
    except QueueUnavailableError as exc:
        raise QueueStartError(str(exc)) from None
