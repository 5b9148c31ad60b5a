"""The tasks extension on the SDK path: ``tools/call`` as a task, and ``tasks/get|update|cancel``.

The decisions are ``tasks_front``'s (shared with the fast path); this module adapts them to the SDK's
handlers: a ``ClientRequestError`` becomes the ``MCPError`` the SDK answers with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types import RequestParams
from pydantic import ConfigDict

from shared.errors import CallError, ClientRequestError, error_object

from .auth.caller import of_context
from .input_required import InputRound
from .router import Router
from .tasks_front import (
    AFTER_INPUT,
    PLAIN,
    TASK,
    TASK_METHODS,
    TASKS_EXTENSION,
    check_task_request,
    client_of,
    create_task,
    plan_call,
    task_request,
)

StartTask = Callable[[InputRound], Awaitable[dict[str, Any]]]


class TaskRequestParams(RequestParams):
    """The params of ``tasks/*``: read from the raw request by ``check_task_request``."""

    model_config = ConfigDict(extra="allow")


class CallPlanner:
    """What the SDK path's ``tools/call`` does about tasks: ``plan`` decides, ``create`` makes the task
    (``TASK``), ``starter`` makes it where the function awaits ``ctx.run_as_task()`` (``AFTER_INPUT``)."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def plan(self, ctx: ServerRequestContext[Any], name: str) -> str:
        """``tasks_front.plan_call`` for this request.

        Raises:
            MCPError: -32021, the tool requires the extension the request did not declare.
        """
        try:
            return plan_call(self._router.catalog, name, ctx.protocol_version, _meta(ctx))
        except ClientRequestError as exc:
            raise MCPError(exc.code, str(exc), exc.data) from None

    async def create(
        self, ctx: ServerRequestContext[Any], name: str, arguments: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The ``CreateTaskResult`` of a task made now, with no answers.

        Raises:
            MCPError: the queue could not create it.
        """
        return await self._create(ctx, name, arguments, None)

    def starter(
        self, ctx: ServerRequestContext[Any], plan: str, name: str, arguments: dict[str, Any] | None
    ) -> StartTask | None:
        """For ``AFTER_INPUT``: the callback that makes the task with the round's answers; else None."""
        if plan != AFTER_INPUT:
            return None

        async def start(round_: InputRound) -> dict[str, Any]:
            return await self._create(ctx, name, arguments, round_.answers)

        return start

    async def _create(
        self,
        ctx: ServerRequestContext[Any],
        name: str,
        arguments: dict[str, Any] | None,
        answers: dict[str, Any] | None,
    ) -> dict[str, Any]:
        try:
            client = client_of(ctx.protocol_version, _meta(ctx), of_context(ctx))
            return await create_task(self._router, name, arguments, client, answers)
        except CallError as exc:
            raise MCPError(**error_object(exc)) from None


def register_task_methods(server: Server[Any], router: Router) -> None:
    """Serve ``tasks/get``, ``tasks/update`` and ``tasks/cancel`` and advertise the extension."""
    for method in TASK_METHODS:
        server.add_request_handler(method, TaskRequestParams, _handler(router, method))
    server.extensions[TASKS_EXTENSION] = {}


def _handler(
    router: Router, method: str
) -> Callable[[ServerRequestContext[Any], TaskRequestParams], Awaitable[dict[str, Any]]]:
    async def handle(ctx: ServerRequestContext[Any], params: TaskRequestParams) -> dict[str, Any]:
        raw = ctx.params or {}
        try:
            headers = getattr(ctx.request, "headers", None)
            arguments = check_task_request(
                method, raw, ctx.protocol_version, _meta(ctx), headers, of_context(ctx)
            )
            return await task_request(router, method, arguments)
        except ClientRequestError as exc:
            raise MCPError(exc.code, str(exc), exc.data) from None

    return handle


def _meta(ctx: ServerRequestContext[Any]) -> dict[str, Any] | None:
    meta = (ctx.params or {}).get("_meta")
    return meta if isinstance(meta, dict) else None


__all__ = ["PLAIN", "TASK", "CallPlanner", "register_task_methods"]
