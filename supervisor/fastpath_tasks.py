"""The tasks extension on the fast path: ``tasks/get|update|cancel`` and the ``tools/call`` that creates a
task, answered without the SDK's per-request machinery — by the same functions as the SDK path
(``tasks_front``), so both answer alike.

A request that fails a check (the extension not declared, ``Mcp-Name`` not the task id, malformed params,
a tool that needs the extension) is left to the SDK path, whose handler answers the error, as every error
the fast path meets is the SDK's own. What the task queue answers (a task, an unknown task) is answered
here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import CallError, ClientRequestError, error_object

from .auth.caller import current as current_principal
from .fastpath_render import ResultRenderer
from .router import Router
from .tasks_front import (
    PLAIN,
    TASK,
    TASK_METHODS,
    Plan,
    check_task_request,
    client_of,
    create_task,
    plan_call,
    task_request,
)

TASK_PARAMS_KEYS = {
    "tasks/get": frozenset({"taskId", "_meta"}),
    "tasks/update": frozenset({"taskId", "inputResponses", "_meta"}),
    "tasks/cancel": frozenset({"taskId", "_meta"}),
}
"""The params the fast path takes for each method of the extension (anything else: the SDK's)."""

Answer = tuple[bytes | None, dict[str, Any] | None]
"""A serialized result, or the JSON-RPC error object to answer instead."""


class FastTasks:
    """The extension's answers on the fast path, over ``router``, rendered by ``render``."""

    def __init__(self, router: Router, render: ResultRenderer) -> None:
        self._router = router
        self._render = render

    def methods(self) -> frozenset[str]:
        """The extension's methods the fast path takes."""
        return frozenset(TASK_METHODS)

    def plan(self, version: str, params: Mapping[str, Any]) -> Plan | None:
        """How a ``tools/call`` runs (``tasks_front.plan_call``), or None when the fast path leaves it to
        the SDK path: a refusal (-32021), or a call that becomes a task only after input."""
        try:
            plan = plan_call(self._router.catalog, params["name"], version, params.get("_meta"))
        except ClientRequestError:
            return None
        return plan if plan in (PLAIN, TASK) else None

    @staticmethod
    def passes(method: str, version: str, params: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        """Whether a ``tasks/*`` request passes the checks the SDK path would refuse it for."""
        if params.keys() - TASK_PARAMS_KEYS[method]:
            return False
        try:
            check_task_request(method, params, version, params["_meta"], headers)
        except ClientRequestError:
            return False
        return True

    async def create(self, version: str, params: Mapping[str, Any]) -> Answer:
        """The ``CreateTaskResult`` of a ``tools/call`` planned ``TASK``, or the error to answer."""
        meta = params["_meta"]
        try:
            client = client_of(version, meta, current_principal.get())
            result = await create_task(self._router, params["name"], params.get("arguments"), client)
        except CallError as exc:
            return None, error_object(exc)
        return self._render.extension(result), None

    async def answer(
        self, method: str, version: str, params: Mapping[str, Any], headers: Mapping[str, str]
    ) -> Answer:
        """The answer to a ``tasks/*`` request that ``passes``."""
        arguments = check_task_request(
            method, params, version, params["_meta"], headers, current_principal.get()
        )
        try:
            result = await task_request(self._router, method, arguments)
        except ClientRequestError as exc:
            return None, error_object(exc)
        return self._render.extension(result), None
