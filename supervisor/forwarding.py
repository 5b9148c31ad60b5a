"""What a call handled through the SDK forwards to its client: progress, log messages and requests.

``call_options`` gives ``Router.call`` the callbacks that send a running call's PROGRESS and LOG frames to
the client of the request (on the request's own stream) and that ask the client what the function asks
(``ctx.sample``, ``ctx.elicit``, ``ctx.list_roots``). Every kind of call uses it: tools, resource reads,
prompts, completions. ``call_with_input`` runs a call with those options; in the 2026-07-28 era the
function's requests to the client become an ``input_required`` result instead (``input_required``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pydantic
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from shared.context import LOG_LEVELS, START_TASK_METHOD
from shared.errors import ClientRequestError

from .auth import caller
from .client_requests import check_client_request, first_error
from .input_required import INPUT_METHODS, InputFlow, InputRound, take_input_key

LOG_LEVEL_KEY = "mcp_supervisor.log_level"


def call_options(ctx: ServerRequestContext[Any], meta: Any) -> dict[str, Any]:
    """Keyword arguments of ``Router.call`` for a request of ``ctx`` with ``_meta`` ``meta``: the progress
    token, the ``_meta`` as plain data, and the callbacks that forward progress (only when the client
    asked for it), log messages and requests to the client. The ``_meta`` the worker gets is the client's
    own, as sent (read from the request's params: the SDK's typed ``meta`` renames ``progressToken``), plus
    the verified principal (``auth.caller.call_meta``), never one the client sent."""
    raw = ctx.params.get("_meta") if isinstance(ctx.params, Mapping) else None
    meta = dict(raw) if isinstance(raw, Mapping) and raw else (dict(meta) if meta else None)
    progress_token: str | int | None = None
    if meta:
        token = meta.get("progress_token", meta.get("progressToken"))
        progress_token = token if isinstance(token, (str, int)) else None

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        await ctx.session.report_progress(progress, total, message)

    async def on_log(level: str, data: Any, logger_name: str | None) -> None:
        if LOG_LEVELS.index(level) < LOG_LEVELS.index(log_level(ctx)):
            return
        await ctx.session.send_log_message(level, data, logger_name, related_request_id=ctx.request_id)  # type: ignore[arg-type]

    async def on_request(method: str, request_params: dict[str, Any]) -> dict[str, Any]:
        return await ask_client(ctx, method, request_params)

    return {
        "progress_token": progress_token,
        "meta": _plain(caller.call_meta(meta, caller.of_context(ctx))),
        "on_progress": on_progress if progress_token is not None else None,
        "on_log": on_log,
        "on_request": on_request,
    }


async def call_with_input(
    flow: InputFlow,
    ctx: ServerRequestContext[Any],
    meta: Any,
    call: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    on_start_task: Callable[[InputRound], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """``call(options)`` with the ``call_options`` of this request; from 2026-07-28 on, for ``tools/call``,
    ``prompts/get`` and ``resources/read``, its requests to the client answered from the retry's answers
    or gathered into an ``input_required`` result (``InputFlow``). With ``on_start_task``, a function
    that awaits ``ctx.run_as_task()`` ends there and the answer is ``on_start_task(round)``'s.

    Raises:
        MCPError: -32602, the ``requestState`` is refused.
        CallError: the call failed, and not because it needs input.
    """
    options = call_options(ctx, meta)
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS or ctx.method not in INPUT_METHODS:
        return await call(options)
    params = ctx.params or {}
    try:
        round_ = flow.open(
            ctx.method,
            params,
            ctx.session.check_client_capability,
            ctx.protocol_version,
            can_start_task=on_start_task is not None,
        )
    except ClientRequestError as exc:
        raise MCPError(exc.code, str(exc)) from None
    options["on_request"] = round_.on_request
    return await flow.run(round_, ctx.method, params, lambda: call(options), on_start_task)


async def ask_client(ctx: ServerRequestContext[Any], method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Send a function's request to the client on the call's own stream and return the answer.

    Raises:
        ClientRequestError: the client lacks the capability, has no channel back (stateless HTTP),
            answered with an error or with something that is not a valid result.
    """
    if method == START_TASK_METHOD:  # ctx.run_as_task() in a call that does not become a task: go on
        return {}
    _, params = take_input_key(method, params)  # the key names a request only in input_required results
    request, result_type = check_client_request(
        method, params, ctx.session.check_client_capability, ctx.protocol_version
    )
    try:
        result = await ctx.session.send_request(
            request, result_type, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
        )
    except MCPError as exc:
        raise ClientRequestError(f"{method} failed: {exc.message}", exc.code) from None
    except pydantic.ValidationError as exc:
        raise ClientRequestError(f"the client's answer to {method} is invalid: {first_error(exc)}") from None
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)  # type: ignore[no-any-return]


def connection_state(ctx: ServerRequestContext[Any]) -> dict[str, Any] | None:
    """The per-connection state dict of the SDK's Connection (where the log level lives)."""
    connection = getattr(ctx.session, "_connection", None)
    return getattr(connection, "state", None)


def log_level(ctx: ServerRequestContext[Any]) -> str:
    """The level the client asked for with logging/setLevel (handshake era); ``debug`` when it did not.

    On 2026-07-28 the SDK applies the per-request opt-in itself.
    """
    state = connection_state(ctx)
    return str(state.get(LOG_LEVEL_KEY, "debug")) if state is not None else "debug"


def _plain(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """``_meta`` as msgpack-safe data (it is a TypedDict of JSON values)."""
    return None if not meta else {str(k): v for k, v in meta.items()}
