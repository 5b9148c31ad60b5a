"""The front's handlers for resources, resource templates, prompts and completions.

They are the tools' handlers again for other kinds of entry: the lists come from the router's catalog
(``Catalog.of_kind``) without touching a worker, and every read, prompt and completion goes through
``Router.call`` with its kind, so it is admitted, routed, timed, cancelled and retried like a tool call.

- ``resources/read``: a resource of that URI, else the first template (in URI-template order) that
  matches it, read through the template's function with the variables as arguments; else -32602 with
  ``data.uri`` (SEP-2164). Any failure while reading is a JSON-RPC error with ``data.uri``.
- ``prompts/get``: an unknown prompt or invalid arguments are -32602; a failing prompt function -32603.
- ``completion/complete``: the handler declared for that prompt argument or template variable, or no
  values when there is none.
- ``resources/subscribe``: ``Subscriptions`` remembers the session per URI; a worker's
  ``ctx.resource_updated(uri)`` reaches every session subscribed to that URI.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import mcp_types as types
import pydantic
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from shared.errors import INTERNAL_ERROR, INVALID_PARAMS, CallError, error_object
from shared.kinds import completion_key

from .forwarding import call_with_input
from .input_required import InputFlow
from .pagination import page
from .router import Router

logger = logging.getLogger("mcp_supervisor.front")

ResultT = TypeVar("ResultT", bound=pydantic.BaseModel)

LISTED_KINDS = {"resource": "resources", "resource_template": "resourceTemplates", "prompt": "prompts"}
"""Kind → the key of its list in the ``*/list`` result."""


def send_in_background(tasks: set[asyncio.Task[None]], notification: Coroutine[Any, Any, None]) -> None:
    """Run ``notification`` in a task of its own, kept in ``tasks`` until it ends (so it is not collected
    half-way); the caller returns at once."""
    task = asyncio.create_task(notification)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


class Subscriptions:
    """URI → the handshake-era sessions subscribed to it (weakly held: a closed session drops out by
    itself); an update also goes to ``events``, where the 2026-07-28 clients' ``subscriptions/listen``
    streams that asked for that URI pick it up."""

    def __init__(self, events: SubscriptionBus) -> None:
        self._sessions: dict[str, weakref.WeakSet[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._events = events

    def add(self, uri: str, session: Any) -> None:
        self._sessions.setdefault(uri, weakref.WeakSet()).add(session)

    def remove(self, uri: str, session: Any) -> None:
        sessions = self._sessions.get(uri)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._sessions[uri]

    def updated(self, uri: str) -> None:
        """Send ``notifications/resources/updated`` to every session and listen stream subscribed to
        ``uri``; returns at once."""
        for session in list(self._sessions.get(uri, ())):
            send_in_background(self._tasks, self._notify(session, uri))
        send_in_background(self._tasks, self._events.publish(ResourceUpdated(uri)))

    async def _notify(self, session: Any, uri: str) -> None:
        try:
            await session.send_resource_updated(uri)
        except Exception as exc:  # a closed session: nothing to tell
            logger.debug("cannot send resources/updated: %s", exc)
            self.remove(uri, session)


class KindListings:
    """The ``resources/list``, ``resources/templates/list`` and ``prompts/list`` pages and the parsed
    templates, rebuilt only when the catalog's entries of that kind changed."""

    def __init__(self, router: Router, page_size: int) -> None:
        self.router = router
        self.page_size = page_size
        self._versions: dict[str, int] = {}
        self._lists: dict[str, tuple[list[dict[str, Any]], list[str]]] = {}
        self._templates: list[tuple[UriTemplate, str]] = []

    async def result(self, kind: str, cursor: str | None) -> dict[str, Any]:
        """The page of the list of ``kind`` that ``cursor`` points to (the first without one); waits
        (bounded) for every pool's first catalog.

        Raises:
            MCPError: -32602, an invalid cursor.
        """
        await self.router.wait_settled()
        entries, keys = self._list(kind)
        listed, next_cursor = page(entries, keys, cursor, self.page_size)
        result: dict[str, Any] = {LISTED_KINDS[kind]: listed}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    def templates(self) -> list[tuple[UriTemplate, str]]:
        """The listed templates, parsed, with their keys (a template the SDK cannot parse is left out)."""
        self._list("resource_template")
        return self._templates

    def _list(self, kind: str) -> tuple[list[dict[str, Any]], list[str]]:
        """The listed entries of ``kind`` as clients see them, and their keys (the catalog sorts by key)."""
        catalog = self.router.catalog
        version = catalog.kind_versions.get(kind, 0)
        if self._versions.get(kind) != version:
            entries = catalog.of_kind(kind)
            self._lists[kind] = ([entry["mcp"] for entry in entries], [entry["key"] for entry in entries])
            if kind == "resource_template":
                self._templates = []
                for entry in entries:
                    try:
                        self._templates.append((UriTemplate.parse(entry["key"]), entry["key"]))
                    except InvalidUriTemplate as exc:
                        logger.error("resource template %r cannot be matched: %s", entry["key"], exc)
            self._versions[kind] = version
        return self._lists[kind]


def kind_handlers(
    router: Router,
    remember: Callable[[ServerRequestContext[Any]], None],
    flow: InputFlow,
    page_size: int,
    events: SubscriptionBus,
) -> dict[str, Any]:
    """The SDK ``Server`` handlers (``on_list_resources=...`` and so on) of every kind but tools.

    ``remember(ctx)`` is called with each request's context (the list_changed notifier's hook); ``flow``
    serves the input-required flow of resource reads and prompts; resource updates are also published on
    ``events`` for the ``subscriptions/listen`` streams.
    """
    listings = KindListings(router, page_size)
    subscriptions = Subscriptions(events)
    router.on_resource_updated = subscriptions.updated

    async def run(
        ctx: ServerRequestContext[Any], kind: str, key: str, arguments: dict[str, Any], meta: Any
    ) -> Any:
        remember(ctx)

        async def call(options: dict[str, Any]) -> dict[str, Any]:
            return await router.call(key, arguments, timeout=router.request_timeout, kind=kind, **options)

        return await call_with_input(flow, ctx, meta, call)

    async def list_resources(ctx: ServerRequestContext[Any], params: Any) -> Any:
        remember(ctx)
        return _typed(types.ListResourcesResult, await listings.result("resource", _cursor(params)))

    async def list_resource_templates(ctx: ServerRequestContext[Any], params: Any) -> Any:
        remember(ctx)
        return _typed(
            types.ListResourceTemplatesResult, await listings.result("resource_template", _cursor(params))
        )

    async def list_prompts(ctx: ServerRequestContext[Any], params: Any) -> Any:
        remember(ctx)
        return _typed(types.ListPromptsResult, await listings.result("prompt", _cursor(params)))

    async def read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> Any:
        uri = str(params.uri)
        await router.wait_settled()
        target: tuple[str, str, dict[str, Any]] | None = None
        if router.catalog.entry("resource", uri) is not None:
            target = ("resource", uri, {})
        else:
            for template, key in listings.templates():
                variables = template.match(uri)
                if variables is not None:
                    target = ("resource_template", key, dict(variables))
                    break
        if target is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown resource: {uri}", data={"uri": uri})
        try:
            result = await run(ctx, *target, params.meta)
        except CallError as exc:
            error = error_object(exc)
            raise MCPError(code=error["code"], message=error["message"], data={"uri": uri}) from None
        if result.get("resultType") == "input_required":
            return _typed(types.InputRequiredResult, result)
        for contents in result.get("contents", []):
            if isinstance(contents, dict):
                contents.setdefault("uri", uri)
        return _typed(types.ReadResourceResult, result, {"uri": uri})

    async def get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> Any:
        await router.wait_settled()
        if router.catalog.entry("prompt", params.name) is None:
            raise MCPError(
                code=INVALID_PARAMS, message=f"Unknown prompt: {params.name}", data={"name": params.name}
            )
        try:
            result = await run(ctx, "prompt", params.name, dict(params.arguments or {}), params.meta)
        except CallError as exc:
            raise MCPError(**error_object(exc)) from None
        if result.get("resultType") == "input_required":
            return _typed(types.InputRequiredResult, result)
        return _typed(types.GetPromptResult, result)

    async def complete(ctx: ServerRequestContext[Any], params: types.CompleteRequestParams) -> Any:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            key = completion_key("prompt", ref.name, params.argument.name)
        else:
            key = completion_key("resource_template", str(ref.uri), params.argument.name)
        await router.wait_settled()
        if router.catalog.entry("completion", key) is None:
            return types.CompleteResult(completion=types.Completion(values=[]))
        context = dict(params.context.arguments or {}) if params.context is not None else {}
        arguments = {"value": params.argument.value, "context": context}
        try:
            result = await run(ctx, "completion", key, arguments, params.meta)
        except CallError as exc:
            raise MCPError(**error_object(exc)) from None
        return _typed(types.CompleteResult, result)

    async def subscribe(ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams) -> Any:
        remember(ctx)
        subscriptions.add(str(params.uri), _session_of(ctx))
        return types.EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams) -> Any:
        subscriptions.remove(str(params.uri), _session_of(ctx))
        return types.EmptyResult()

    return {
        "on_list_resources": list_resources,
        "on_list_resource_templates": list_resource_templates,
        "on_read_resource": read_resource,
        "on_subscribe_resource": subscribe,
        "on_unsubscribe_resource": unsubscribe,
        "on_list_prompts": list_prompts,
        "on_get_prompt": get_prompt,
        "on_completion": complete,
    }


def _cursor(params: Any) -> str | None:
    """The ``cursor`` of a list request's params (which may be absent)."""
    cursor = getattr(params, "cursor", None)
    return cursor if isinstance(cursor, str) else None


def _typed(model: type[ResultT], result: dict[str, Any], data: dict[str, Any] | None = None) -> ResultT:
    """``result`` as the SDK's result type, whose defaults (``resultType``, the caching hints ``ttlMs`` and
    ``cacheScope``) the SDK sieves per protocol version; a result that is not one is -32603.

    Raises:
        MCPError: the result does not validate (a function returned a malformed message, say).
    """
    try:
        return model.model_validate(result)
    except pydantic.ValidationError as exc:
        message = f"invalid {model.__name__}: {' '.join(str(exc).split())[:300]}"
        raise MCPError(code=INTERNAL_ERROR, message=message, data=data) from None


def _session_of(ctx: ServerRequestContext[Any]) -> Any:
    """What outlives one request of a session and can send it notifications: the SDK's connection."""
    return getattr(ctx.session, "_connection", None) or ctx.session
