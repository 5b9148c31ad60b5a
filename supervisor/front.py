"""The front: MCP over Streamable HTTP (FastAPI + uvicorn) and stdio, via the official ``mcp`` SDK.

The SDK's low-level ``Server`` speaks the protocol (both the 2025-11-25 session era and the stateless
2026-07-28 era); this module only answers ``tools/list`` from the router's catalog and hands ``tools/call``
to ``Router.call``. Errors follow the specification: an unknown tool or invalid arguments are JSON-RPC
errors (-32602); everything that goes wrong while running a tool — including its worker dying — is a tool
result with ``isError: true`` and a one-line message.

Over HTTP, ``fastpath.FastPath`` sits in front of the whole app and answers the common stateless
(2026-07-28) ``tools/call`` and ``tools/list`` POSTs, and ``tools/call``, ``tools/list`` and ``ping`` on an
existing handshake-era session, itself, with the same answers; everything else reaches the SDK here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

import mcp_types as types
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    SubscriptionBus,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.routing import Route
from starlette.types import ASGIApp

from shared.errors import CallError, error_object
from shared.results import call_error_result

from . import __version__
from .auth.caller import of_context, scopes_of
from .auth.setup import protect
from .config import Settings
from .dashboard import NO_STORE, add_dashboard
from .fastpath import FastPath
from .forwarding import LOG_LEVEL_KEY, call_with_input, connection_state
from .front_kinds import kind_handlers, send_in_background
from .front_tasks import TASK, CallPlanner, register_task_methods
from .header_values import TrimmedMcpHeaders
from .host_guard import HostGuard, transport_security
from .http_stats import HTTPStats, HTTPStatsMiddleware
from .input_required import InputFlow
from .listing import ToolListing
from .metrics_page import MetricsPage
from .router import Router
from .sdk_sessions import SessionTable
from .session_caps import CappedSessionManager
from .status import fresh_status_document, readiness
from .task_listen import TaskListenHandler, TaskStreams
from .text_guard import TextGuard
from .types import SupervisorView

logger = logging.getLogger("mcp_supervisor.front")

SERVER_NAME = "mcp-supervisor"
HTTP_PATHS = ("/mcp", "/healthz", "/readyz", "/status", "/metrics", "/ui", "/ui/workflows")


class _SupervisorServer(Server[Any]):
    """The SDK server, announcing ``listChanged`` for tools, resources and prompts: the catalog changes as
    workers come and go."""

    input_flow: InputFlow
    notifier: ListChangedNotifier

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(tools_changed=True, resources_changed=True, prompts_changed=True),
            experimental_capabilities,
            extensions,
        )


class ListChangedNotifier:
    """Tells clients when a list changes: the handshake-era connections (2025-11-25 and older) that have
    talked to us, on their standalone stream, and the 2026-07-28 clients listening on a
    ``subscriptions/listen`` stream, through ``events`` (the listen handler, ``listen_handler``, reads it
    and sends each stream only what it asked for). Each of the three lists is announced only when entries
    of its kinds changed (``Catalog.last_changed``).
    """

    SENDERS = (
        (("tool",), "send_tool_list_changed", ToolsListChanged()),
        (("resource", "resource_template"), "send_resource_list_changed", ResourcesListChanged()),
        (("prompt",), "send_prompt_list_changed", PromptsListChanged()),
    )

    def __init__(
        self,
        changed_kinds: Callable[[], Collection[str]] | None = None,
        events: SubscriptionBus | None = None,
    ) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed_kinds = changed_kinds or (lambda: ("tool",))
        self._events = events

    def remember(self, ctx: ServerRequestContext[Any]) -> None:
        """Note the connection of a request the SDK serves (handshake era only)."""
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._connections.add(connection)

    def remember_connection(self, connection: Connection) -> None:
        """Note the connection of a handshake-era session the fast path served."""
        self._connections.add(connection)

    def catalog_changed(self) -> None:
        """Send the ``notifications/*/list_changed`` of every list whose kinds ``changed_kinds()`` names
        (tools alone without it) to every remembered connection; returns at once."""
        changed = set(self._changed_kinds())
        lists = [(name, event) for kinds, name, event in self.SENDERS if changed.intersection(kinds)]
        for connection in list(self._connections):
            for sender, _ in lists:
                send_in_background(self._tasks, self._notify(connection, sender))
        if self._events is not None:
            for _, event in lists:
                send_in_background(self._tasks, self._events.publish(event))

    async def _notify(self, connection: Any, sender: str) -> None:
        try:
            await getattr(connection, sender)()
        except Exception as exc:  # a closed connection: nothing to tell
            logger.debug("cannot send %s: %s", sender, exc)
            self._connections.discard(connection)


def build_mcp_server(router: Router, settings: Settings) -> _SupervisorServer:
    """The SDK server whose handlers forward to ``router``; its ``input_flow`` is the one the fast path
    shares."""
    flow = InputFlow(settings.state_keys, settings.request_state_ttl)
    listing = ToolListing(router, settings.list_page_size)
    events = InMemorySubscriptionBus()
    notifier = ListChangedNotifier(lambda: router.catalog.last_changed, events)
    router.catalog.on_change = notifier.catalog_changed
    planner = CallPlanner(router)

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        notifier.remember(ctx)
        view = listing.view(scopes_of(of_context(ctx)))
        return await listing.result(params.cursor if params is not None else None, view)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        notifier.remember(ctx)
        plan = planner.plan(ctx, params.name)
        if plan == TASK:
            return await planner.create(ctx, params.name, params.arguments)

        async def call(options: dict[str, Any]) -> dict[str, Any]:
            return await router.call(params.name, params.arguments, timeout=router.request_timeout, **options)

        try:
            result = await call_with_input(
                flow, ctx, params.meta, call, planner.starter(ctx, plan, params.name, params.arguments)
            )
        except CallError as exc:
            answer = call_error_result(exc)
            if answer is None:
                raise MCPError(**error_object(exc)) from None
            result = answer
        if result.get("resultType") in ("input_required", "task"):
            return result
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            result["resultType"] = "complete"  # required from 2026-07-28 on; unknown to older versions
        return result

    async def set_logging_level(ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams) -> Any:
        state = connection_state(ctx)
        if state is not None:
            state[LOG_LEVEL_KEY] = params.level
        return types.EmptyResult()

    def input_schema(name: str) -> dict[str, Any] | None:
        entry = router.tool(name)
        return None if entry is None else entry.get("inputSchema")

    # The logging capability is deprecated in 2026-07-28 but still part of 2025-11-25, which we serve.
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
    server = _SupervisorServer(
        SERVER_NAME,
        version=__version__,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_set_logging_level=set_logging_level,
        get_tool_input_schema=input_schema,
        on_subscriptions_listen=listen_handler(router, settings, events),
        **kind_handlers(router, notifier.remember, flow, settings.list_page_size, events),
    )
    if settings.task_queue:
        register_task_methods(server, router)
    server.input_flow = flow
    server.notifier = notifier
    return server


def listen_handler(
    router: Router, settings: Settings, events: SubscriptionBus
) -> ListenHandler | TaskListenHandler:
    """The ``subscriptions/listen`` handler: with a task queue, one that also serves the tasks extension's
    ``taskIds`` and is told each task state the queue reports; else the SDK's."""
    if not settings.task_queue:
        return ListenHandler(events)
    streams = TaskStreams()
    router.on_task_changed = streams.publish
    return TaskListenHandler(events, streams)


def build_http_app(
    server: _SupervisorServer, router: Router, settings: Settings, supervisor: SupervisorView
) -> ASGIApp:
    """The HTTP app: ``/mcp`` (the SDK's Streamable HTTP transport behind the fast path), the health,
    status and metrics endpoints and the ``/ui`` page (``dashboard.py``)."""
    security = transport_security(settings)
    manager = CappedSessionManager(
        app=server,
        security_settings=security,
        max_request_body_size=settings.max_body_size,
        max_sessions=settings.max_sessions,
        session_idle_timeout=settings.session_idle_timeout,
        max_per_principal=settings.max_sessions_per_principal,
        stats=supervisor.auth_stats,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager.run():
            yield

    # No OpenAPI document or docs pages: not part of the product, and the schema is memory built on demand.
    app = FastAPI(
        title=SERVER_NAME,
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.router.routes.append(Route("/mcp", StreamableHTTPASGIApp(manager), methods=["GET", "POST", "DELETE"]))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness: 200 while the supervisor's event loop answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 200 when every configured runtime has a ready worker, else 503 with the reason."""
        ready, body = readiness(router, supervisor)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/status")
    async def status() -> JSONResponse:
        """The supervisor and each worker: states, restarts, psutil figures, calls and latencies; the
        task queue's counts."""
        return JSONResponse(await fresh_status_document(router, supervisor), headers=NO_STORE)

    add_dashboard(app, router, supervisor)

    http_stats = HTTPStats() if settings.enable_metrics else None
    if http_stats is not None:
        page = MetricsPage(supervisor, http_stats)

        @app.get("/metrics")
        async def metrics() -> Response:
            """Prometheus text format (prometheus-client)."""
            if supervisor.queue_status is not None:
                await supervisor.queue_status.refresh(router)
            body, media_type = page.render()
            return Response(body, media_type=media_type)

        app.add_middleware(HTTPStatsMiddleware, stats=http_stats, paths=frozenset(HTTP_PATHS))

    guarded = HostGuard(TextGuard(TrimmedMcpHeaders(app), settings.max_body_size), security)
    if not settings.fast_path:
        return protect(guarded, router, settings, supervisor.auth_stats)
    fast = FastPath(
        guarded,
        server=server,
        router=router,
        input_flow=server.input_flow,
        allowed_hosts=security.allowed_hosts,
        allowed_origins=security.allowed_origins,
        max_body_size=settings.max_body_size,
        list_page_size=settings.list_page_size,
        stats=supervisor.fast_path_stats,
        http_stats=http_stats,
        sessions=SessionTable(manager, server),
        remember=server.notifier.remember_connection,
    )
    return protect(fast, router, settings, supervisor.auth_stats)
