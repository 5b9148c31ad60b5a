"""The MCP tasks extension at the front (``io.modelcontextprotocol/tasks``, SEP-2663, 2026-07-28).

A task is a row of the durable task queue (the ``trio-queue`` worker): the front only decides and
forwards. The queue serves internal catalog entries of kind ``tasks`` (``create``, ``get``, ``update``,
``cancel``; and ``stats``, polled for /status) that the front calls through the router like any other
entry, so a task id answers from the database whatever happened to the workers or to this process in
between.

How a ``tools/call`` goes (``plan_call``), for a tool's ``task_support``:

- ``forbidden`` (the default), or a request in the session era: a plain call (``PLAIN``);
- the request did not declare the extension in its ``clientCapabilities``: a plain call for
  ``optional``, error -32021 naming the extension for ``required``;
- declared: the task is created at once (``TASK``), or, for a tool declared ``task_after_input``, the call
  runs as a plain call with the input-required flow until the function awaits ``ctx.run_as_task()``
  (``AFTER_INPUT``); then the task is created with the answers gathered so far.

A quarantined tool (``quarantine.py``) is a plain call whatever its ``task_support``: the router refuses it
at once, so the client gets the same ``isError`` refusal as any caller, and no task is made only to fail.

Used by both the SDK path (``front.py``) and the fast path (``fastpath_tasks.py``), so both answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from mcp_types import CLIENT_CAPABILITIES_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from shared.errors import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallError,
    ClientRequestError,
)
from shared.principal import Principal

from .catalog import Catalog
from .router import Router

TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"
HEADER_MISMATCH: Final = -32020
TASK_CALL_TIMEOUT: Final = 30.0
"""Seconds the front waits for the task queue to answer one of its entries."""
TASK_METHODS: Final = {"tasks/get": "get", "tasks/update": "update", "tasks/cancel": "cancel"}
"""The extension's methods → the queue's entry that serves each."""
QUEUE_ENTRY: Final = "tasks:create"
"""The reference of the queue's entry that creates tasks: in the catalog when a task queue runs."""

Plan = Literal["plain", "task", "after_input"]
PLAIN: Final = "plain"
TASK: Final = "task"
AFTER_INPUT: Final = "after_input"


def missing_extension(what: str) -> ClientRequestError:
    """The -32021 error for ``what`` (a tool, a method) that needs the extension the client did not
    declare, with ``data.requiredCapabilities`` as the specification shows it."""
    return ClientRequestError(
        f"{what} needs the client capability extensions[{TASKS_EXTENSION!r}], which this request did not "
        "declare",
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
    )


def declares_tasks(meta: Mapping[str, Any] | None) -> bool:
    """Whether the request's ``_meta`` declares the extension in its ``clientCapabilities`` (its presence
    is what counts, as the SDK checks extensions)."""
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if meta else None
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return isinstance(extensions, dict) and TASKS_EXTENSION in extensions


def plan_call(catalog: Catalog, name: str, version: str, meta: Mapping[str, Any] | None) -> Plan:
    """How a ``tools/call`` of ``name`` runs (see the module docstring).

    Raises:
        ClientRequestError: -32021, the tool requires the extension and the request did not declare it.
    """
    support = catalog.task_support.get(name)
    if support is None or name in catalog.quarantined:
        return PLAIN
    if QUEUE_ENTRY not in catalog.pool_of:  # no task queue (task_queue = false): nowhere to keep a task
        if support == "required":
            raise ClientRequestError(
                f"tool {name!r} runs only as a task, and this server runs no task queue (task_queue = false)"
            )
        return PLAIN
    if version not in MODERN_PROTOCOL_VERSIONS or not declares_tasks(meta):
        if support == "required":
            raise missing_extension(f"tool {name!r} (task_support='required')")
        return PLAIN
    return AFTER_INPUT if name in catalog.task_after_input else TASK


def client_of(
    version: str, meta: Mapping[str, Any] | None, principal: Principal | None = None
) -> dict[str, Any]:
    """What a task keeps of its client: the capabilities and protocol version its requests to the client
    are checked against on every run, and the verified principal that created it (its runs see it as
    ``ctx.principal``; only it may get, update or cancel the task)."""
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if meta else None
    client: dict[str, Any] = {
        "capabilities": capabilities if isinstance(capabilities, dict) else {},
        "protocolVersion": version,
    }
    if principal is not None:
        client["principal"] = principal.to_meta()
    return client


async def create_task(
    router: Router,
    name: str,
    arguments: dict[str, Any] | None,
    client: dict[str, Any],
    answers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create the task of a ``tools/call`` in the queue and return its ``CreateTaskResult`` (wire form).

    The task is committed to the database before this returns.

    Raises:
        CallError: the queue could not create it (no queue worker, busy, its worker died ...).
    """
    created = await router.call(
        "create",
        {
            "tool": name,
            "arguments": arguments or {},
            "client": client,
            "answers": answers or {},
            "run_again": name in router.catalog.retry_safe,
        },
        timeout=TASK_CALL_TIMEOUT,
        kind="tasks",
    )
    return {**created, "resultType": "task"}


def check_task_request(
    method: str,
    params: Mapping[str, Any],
    version: str,
    meta: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """The queue entry's arguments for a ``tasks/get|update|cancel`` request, once it passes the checks;
    they name the asking principal's subject (``owner``), so that another principal's task is unknown.

    Raises:
        ClientRequestError: -32601 in the session era (the extension is a 2026-07-28 one), -32021 when the
            request did not declare the extension, -32020 when the ``Mcp-Name`` header is not the task id,
            -32602 when the params are malformed.
    """
    if version not in MODERN_PROTOCOL_VERSIONS:
        raise ClientRequestError(f"method not found: {method}", METHOD_NOT_FOUND)
    if not declares_tasks(meta):
        raise missing_extension(method)
    task_id = params.get("taskId")
    if not isinstance(task_id, str):
        raise ClientRequestError(f"{method}: taskId must be a string", INVALID_PARAMS)
    if headers is not None and (headers.get("mcp-name") or "").strip(" \t") != task_id:
        raise ClientRequestError(
            "mcp-name header does not match the request body's 'taskId' parameter", HEADER_MISMATCH
        )
    arguments: dict[str, Any] = {"task_id": task_id}
    if principal is not None:
        arguments["owner"] = principal.subject
    if method == "tasks/update":
        responses = params.get("inputResponses")
        if not isinstance(responses, dict):
            raise ClientRequestError("tasks/update: inputResponses must be an object", INVALID_PARAMS)
        arguments["input_responses"] = responses
    return arguments


async def task_request(router: Router, method: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The result of a checked ``tasks/*`` request (``check_task_request``), with ``resultType``.

    Raises:
        ClientRequestError: the queue's answer was an error (-32602 for an unknown or expired task), or
            the queue could not be reached (its code and message).
    """
    try:
        result = await router.call(TASK_METHODS[method], arguments, timeout=TASK_CALL_TIMEOUT, kind="tasks")
    except CallError as exc:
        raise ClientRequestError(str(exc), exc.code, exc.data) from None
    return {**result, "resultType": "complete"}
