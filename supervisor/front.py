"""The front: MCP over Streamable HTTP (FastAPI + uvicorn) and stdio, via the official ``mcp`` SDK.

The SDK's low-level ``Server`` speaks the protocol (both the 2025-11-25 session era and the stateless
2026-07-28 era); this module only answers ``tools/list`` from the router's catalog and hands ``tools/call``
to ``Router.call``. Errors follow the specification: an unknown tool or invalid arguments are JSON-RPC
errors (-32602); everything that goes wrong while running a tool — including its worker dying — is a tool
result with ``isError: true`` and a one-line message.

Over HTTP, ``fastpath.FastPath`` sits in front of the whole app and answers the common stateless
(2026-07-28) ``tools/call`` and ``tools/list`` POSTs itself, with the same answers; everything else reaches
the SDK here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
import weakref
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
import pydantic
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route
from starlette.types import ASGIApp

from shared.context import LOG_LEVELS
from shared.errors import CallError, ClientRequestError, error_object
from shared.results import call_error_result

from . import __version__
from .client_requests import check_client_request, first_error
from .config import Settings
from .fastpath import FastPath
from .listing import ToolListing
from .metrics import HTTPStats, HTTPStatsMiddleware, build_registry
from .router import Router
from .status import readiness, status_document
from .types import SupervisorView

logger = logging.getLogger("mcp_supervisor.front")

SERVER_NAME = "mcp-supervisor"
LOG_LEVEL_KEY = "mcp_supervisor.log_level"
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
HTTP_PATHS = ("/mcp", "/healthz", "/readyz", "/status", "/metrics")


class _SupervisorServer(Server[Any]):
    """The SDK server, announcing ``tools.listChanged``: the catalog changes as workers come and go."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class ListChangedNotifier:
    """Remembers the connections that have talked to us and tells them when the tool list changes.

    Only handshake-era connections (2025-11-25 and older) with a standalone stream are told; the
    2026-07-28 era delivers list changes through ``subscriptions/listen``, which is not served yet.
    """

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[None]] = set()

    def remember(self, ctx: ServerRequestContext[Any]) -> None:
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._connections.add(connection)

    def catalog_changed(self) -> None:
        """Send ``notifications/tools/list_changed`` to every remembered connection; returns at once."""
        for connection in list(self._connections):
            task = asyncio.create_task(self._notify(connection))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _notify(self, connection: Any) -> None:
        try:
            await connection.send_tool_list_changed()
        except Exception as exc:  # a closed connection: nothing to tell
            logger.debug("cannot send tools/list_changed: %s", exc)
            self._connections.discard(connection)


def build_mcp_server(router: Router, settings: Settings) -> Server[Any]:
    """The SDK server whose handlers forward to ``router``."""
    listing = ToolListing(router)
    notifier = ListChangedNotifier()
    router.on_catalog_change = notifier.catalog_changed

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        notifier.remember(ctx)
        return await listing.result()

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        notifier.remember(ctx)
        meta = dict(params.meta) if params.meta else None
        progress_token: str | int | None = None
        if meta:
            token = meta.get("progress_token", meta.get("progressToken"))
            progress_token = token if isinstance(token, (str, int)) else None

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        async def on_log(level: str, data: Any, logger_name: str | None) -> None:
            if LOG_LEVELS.index(level) < LOG_LEVELS.index(_log_level(ctx)):
                return
            await ctx.session.send_log_message(level, data, logger_name, related_request_id=ctx.request_id)  # type: ignore[arg-type]

        async def on_request(method: str, request_params: dict[str, Any]) -> dict[str, Any]:
            return await _ask_client(ctx, method, request_params)

        try:
            result = await router.call(
                params.name,
                params.arguments,
                timeout=router.request_timeout,
                progress_token=progress_token,
                meta=_plain(meta),
                on_progress=on_progress if progress_token is not None else None,
                on_log=on_log,
                on_request=on_request,
            )
        except CallError as exc:
            answer = call_error_result(exc)
            if answer is None:
                raise MCPError(**error_object(exc)) from None
            result = answer
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            result["resultType"] = "complete"  # required from 2026-07-28 on; unknown to older versions
        return result

    async def set_logging_level(ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams) -> Any:
        state = _connection_state(ctx)
        if state is not None:
            state[LOG_LEVEL_KEY] = params.level
        return types.EmptyResult()

    def input_schema(name: str) -> dict[str, Any] | None:
        entry = router.tool(name)
        return None if entry is None else entry.get("inputSchema")

    # The logging capability is deprecated in 2026-07-28 but still part of 2025-11-25, which we serve.
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
    server: Server[Any] = _SupervisorServer(
        SERVER_NAME,
        version=__version__,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_set_logging_level=set_logging_level,
        get_tool_input_schema=input_schema,
    )
    return server


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: loopback Host and Origin values plus the configured extras."""
    hosts = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
    origins = [*LOOPBACK_ORIGINS, *settings.allowed_origins]
    if settings.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(f"{settings.host}:*")
        origins.append(f"http://{settings.host}:*")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def build_http_app(
    server: Server[Any], router: Router, settings: Settings, supervisor: SupervisorView
) -> ASGIApp:
    """The HTTP app: ``/mcp`` (the SDK's Streamable HTTP transport behind the fast path) and the health
    endpoints."""
    security = transport_security(settings)
    manager = StreamableHTTPSessionManager(
        app=server,
        security_settings=security,
        max_request_body_size=settings.max_body_size,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app = FastAPI(title=SERVER_NAME, version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.router.routes.append(Route("/mcp", StreamableHTTPASGIApp(manager), methods=["GET", "POST", "DELETE"]))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: 200 while the supervisor's event loop answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 200 when every configured runtime has a ready worker, else 503 with the reason."""
        ready, body = readiness(router, supervisor)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/status")
    async def status() -> JSONResponse:
        """The supervisor and each worker: states, restarts, psutil figures, calls and latencies."""
        return JSONResponse(status_document(router, supervisor))

    http_stats = HTTPStats() if settings.enable_metrics else None
    if http_stats is not None:
        registry = build_registry(supervisor, http_stats)

        @app.get("/metrics")
        async def metrics() -> Response:
            """Prometheus text format (prometheus-client)."""
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

        app.add_middleware(HTTPStatsMiddleware, stats=http_stats, paths=frozenset(HTTP_PATHS))

    if not settings.fast_path:
        return app
    return FastPath(
        app,
        server=server,
        router=router,
        allowed_hosts=security.allowed_hosts,
        allowed_origins=security.allowed_origins,
        max_body_size=settings.max_body_size,
        stats=supervisor.fast_path_stats,
        http_stats=http_stats,
    )


async def _ask_client(ctx: ServerRequestContext[Any], method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Send a tool's request to the client on the tool call's own stream and return the answer.

    Raises:
        ClientRequestError: the client lacks the capability, has no channel back (stateless HTTP),
            answered with an error or with something that is not a valid result.
    """
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


def _connection_state(ctx: ServerRequestContext[Any]) -> dict[str, Any] | None:
    """The per-connection state dict of the SDK's Connection (where the log level lives)."""
    connection = getattr(ctx.session, "_connection", None)
    return getattr(connection, "state", None)


def _log_level(ctx: ServerRequestContext[Any]) -> str:
    """The level the client asked for with logging/setLevel (handshake era); ``debug`` when it did not.

    On 2026-07-28 the SDK applies the per-request opt-in itself.
    """
    state = _connection_state(ctx)
    return str(state.get(LOG_LEVEL_KEY, "debug")) if state is not None else "debug"


def _plain(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """``_meta`` as msgpack-safe data (it is a TypedDict of JSON values)."""
    return None if not meta else {str(k): v for k, v in meta.items()}
