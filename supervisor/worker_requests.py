"""Answering the requests workers make: REQUEST frames, answered with one REPLY each.

Two kinds (docs/protocol.md):

- a request of a *running tool* (``call_id`` of its call): ``tools/call`` (a tool calling a tool) is run
  by the supervisor itself; anything else (sampling, elicitation) goes to the client through the call's
  ``on_request``. It lives as long as the call: the router cancels it when the call ends.
- a request of the *worker itself* (``call_id`` 0: the task queue; never a remote worker): ``tools/call``
  (with its progress sent back as REQUEST_PROGRESS; with ``task``, one run of an MCP task: ``task_runs``),
  ``supervisor/tools``, ``supervisor/workers`` and ``supervisor/task_changed`` (an MCP task's new state,
  for the clients listening); any other method is answered with -32601. REQUEST_CANCEL cancels one, and the worker's death cancels them all, so that a task its
  next incarnation recovers never runs twice at once.

Every answer is a REPLY: a failure becomes its JSON-RPC error object (``shared.errors.error_object``),
never an exception escaping to the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shared.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallError,
    ClientRequestError,
    InvalidArgumentsError,
    error_object,
)
from shared.protocol import Message, Reply, Request, RequestProgress
from shared.results import call_error_result

from .catalog import Catalog
from .links import WorkerLink
from .router_types import ProgressCallback, RequestCallback, ToolCaller
from .task_runs import run_task_call

QUEUE_PROGRESS_TOKEN = "queue"
"""The progress token of the task queue's calls (their progress goes to the task)."""


class WorkerRequests:
    """Answers the requests of the workers connected as ``links`` (the router's table, read only).

    ``send(identity, message)`` queues a frame to a worker and never raises.
    """

    def __init__(
        self,
        caller: ToolCaller,
        catalog: Catalog,
        links: Mapping[bytes, WorkerLink],
        send: Callable[[bytes, Message], None],
    ) -> None:
        self._caller = caller
        self._catalog = catalog
        self._links = links
        self._send = send
        self._running: dict[tuple[bytes, int], asyncio.Task[None]] = {}
        """The worker requests being answered, by (worker identity, request id)."""
        self.on_task_changed: Callable[[dict[str, Any]], None] | None = None
        """Told every MCP task state the task queue reports (``supervisor/task_changed``); never raises."""

    # -- requests of a running tool ----------------------------------------------------------------

    def start_for_call(
        self,
        link: WorkerLink,
        request: Request,
        on_request: RequestCallback | None,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        """Start answering a request of a tool running on ``link``, in a task kept in ``tasks`` while it
        runs (the router cancels them when the call ends)."""
        task = asyncio.create_task(self._reply(link, request, self._tool_request, request, on_request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _tool_request(self, request: Request, on_request: RequestCallback | None) -> dict[str, Any]:
        """The answer to a request of a running tool: ``tools/call`` by the router itself, anything else
        by the client (``on_request``)."""
        if request.method == "tools/call":
            return await self._call_tool(request.params)
        if on_request is not None:
            return await on_request(request.method, request.params)
        raise ClientRequestError(f"{request.method} cannot reach a client from here")

    def refuse_late(self, link: WorkerLink, request: Request) -> None:
        """Answer a request of a tool whose call is over (or was never sent to ``link``) with an error."""
        self._send(
            link.identity,
            Reply(request.request_id, None, {"code": INTERNAL_ERROR, "message": "the call is over"}),
        )

    # -- requests of a worker itself ---------------------------------------------------------------

    def start(self, link: WorkerLink, request: Request) -> None:
        """Start answering a request ``link`` made on its own behalf (``call_id`` 0)."""
        key = (link.identity, request.request_id)
        task = asyncio.create_task(self._reply(link, request, self._worker_request, link, request))
        self._running[key] = task
        link.own_requests += 1

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(key, None)
            link.own_requests -= 1

        task.add_done_callback(done)

    def cancel(self, link: WorkerLink, request_id: int) -> None:
        """REQUEST_CANCEL: cancel that request of ``link`` (and the tool call it runs); a no-op when it is
        over."""
        task = self._running.get((link.identity, request_id))
        if task is not None:
            task.cancel()

    def cancel_all(self, link: WorkerLink) -> None:
        """Cancel every request ``link`` made on its own behalf (the worker is gone)."""
        for (identity, _), task in list(self._running.items()):
            if identity == link.identity:
                task.cancel()

    async def _worker_request(self, link: WorkerLink, request: Request) -> dict[str, Any]:
        """The answer to a request a worker made on its own behalf (the task queue's; a remote node's
        worker may make none: it would act for no client, or speak for the task queue)."""
        if link.node is not None:
            raise ClientRequestError(
                f"a remote worker cannot make {request.method!r} requests", METHOD_NOT_FOUND
            )
        if request.method == "tools/call":

            async def forward(progress: float, total: float | None, message: str | None) -> None:
                self._send(link.identity, RequestProgress(request.request_id, progress, total, message))

            if "task" in request.params:  # a run of an MCP task
                return await run_task_call(self._caller, request.params, forward)
            return await self._call_tool(request.params, on_progress=forward)
        if request.method == "supervisor/task_changed":
            task = request.params.get("task")
            if self.on_task_changed is not None and isinstance(task, dict):
                self.on_task_changed(task)
            return {}
        if request.method == "supervisor/tools":
            pool_of = self._catalog.pool_of
            return {
                "tools": {
                    name: {**_deadline_filled(entry, self._caller.request_timeout), "pool": pool_of.get(name)}
                    for name, entry in self._catalog.entries().items()
                }
            }
        if request.method == "supervisor/workers":
            return {"workers": [_describe(other) for other in self._links.values()]}
        raise ClientRequestError(f"unknown request {request.method!r}", METHOD_NOT_FOUND)

    async def _reply(
        self,
        link: WorkerLink,
        request: Request,
        answer: Callable[..., Awaitable[dict[str, Any]]],
        *args: Any,
    ) -> None:
        """Send ``link`` the REPLY to ``request``: ``answer(*args)``'s result, or the error it raised as a
        JSON-RPC error object. Never raises.

        Cancellation: propagates, and nothing is sent (the call the request belonged to is over, or the
        worker cancelled its own request).
        """
        try:
            result = await answer(*args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._send(link.identity, Reply(request.request_id, None, error_object(exc)))
            return
        self._send(link.identity, Reply(request.request_id, result, None))

    # -- tool-to-tool calls ------------------------------------------------------------------------

    async def _call_tool(
        self, params: dict[str, Any], on_progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """A ``tools/call`` a worker asked for: the tool's result, or its tool execution error as an
        ``isError`` result. Invalid arguments are the exception: the caller here is code (``ctx.call_tool``,
        the task queue), not a model, so it gets them as an error it can catch, and the queue does not
        retry a call that can never run.

        ``params``: ``name``, ``arguments`` and ``timeout`` (seconds; the router's ``request_timeout`` when
        absent).

        Raises:
            ClientRequestError: the params are malformed, or the call failed with a protocol error (its
                code and data).
        """
        name = params.get("name")
        arguments = params.get("arguments")
        timeout = params.get("timeout")
        if not isinstance(name, str) or not isinstance(arguments, (dict, type(None))):
            raise ClientRequestError("tools/call needs a tool name and an arguments object", INVALID_PARAMS)
        try:
            return await self._caller.call(
                name,
                arguments,
                timeout=float(timeout) if timeout is not None else self._caller.request_timeout,
                # a tool reports progress only when a token asks for it: the task queue's calls do
                progress_token=None if on_progress is None else QUEUE_PROGRESS_TOKEN,
                on_progress=on_progress,
            )
        except CallError as exc:
            result = None if isinstance(exc, InvalidArgumentsError) else call_error_result(exc)
            if result is None:
                raise ClientRequestError(**error_object(exc)) from None
            return result


def _describe(link: WorkerLink) -> dict[str, Any]:
    """A worker as ``supervisor/workers`` answers it (its ``runtime`` key holds the pool)."""
    return {
        "id": link.worker_id,
        "runtime": link.pool,
        "pid": link.pid,
        "state": "draining" if link.draining else "ready",
        "node": link.node,
        "tools": link.tool_names,
        "in_flight": len(link.in_flight),
    }


def _deadline_filled(entry: dict[str, Any], request_timeout: float) -> dict[str, Any]:
    """``entry`` with an unset ``timeout_seconds`` replaced by ``request_timeout``: the deadline the call
    really gets, which the task queue bounds an attempt by (a lost answer must not run forever)."""
    metadata = entry.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("timeout_seconds") is not None:
        return entry
    return {**entry, "metadata": {**metadata, "timeout_seconds": request_timeout}}
