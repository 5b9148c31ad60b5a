"""The front: MCP over Streamable HTTP (FastAPI + uvicorn) and stdio, via the official ``mcp`` SDK.

The SDK's low-level ``Server`` speaks the protocol (both the 2025-11-25 session era and the stateless
2026-07-28 era); this module only answers ``tools/list`` from the router's catalog and hands ``tools/call``
to ``Router.call``. Errors follow the specification: an unknown tool or invalid arguments are JSON-RPC
errors (-32602); everything that goes wrong while running a tool — including its worker dying — is a tool
result with ``isError: true`` and a one-line message.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.routing import Route

from shared.errors import CallError
from shared.results import error_result

from . import __version__
from .config import Settings
from .router import Router
from .status import readiness, status_document

SERVER_NAME = "mcp-supervisor"
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
_CATALOG_KEYS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def build_mcp_server(router: Router, settings: Settings) -> Server[Any]:
    """The SDK server whose handlers forward to ``router``."""
    listing: dict[str, Any] = {"version": -1, "result": None}

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        await router.wait_settled()
        if listing["version"] != router.catalog_version:
            tools = [{k: entry[k] for k in _CATALOG_KEYS if k in entry} for entry in router.tools()]
            listing["result"] = types.ListToolsResult.model_validate({"tools": tools})
            listing["version"] = router.catalog_version
        return listing["result"]

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        meta = dict(params.meta) if params.meta else None
        progress_token = None
        if meta:
            progress_token = meta.get("progress_token", meta.get("progressToken"))

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        async def on_log(level: str, data: Any, logger_name: str | None) -> None:
            await ctx.session.send_log_message(level, data, logger_name, related_request_id=ctx.request_id)  # type: ignore[arg-type]

        try:
            result = await router.call(
                params.name,
                params.arguments,
                timeout=settings.request_timeout,
                progress_token=progress_token,
                meta=_plain(meta),
                on_progress=on_progress if progress_token is not None else None,
                on_log=on_log,
            )
        except CallError as exc:
            if exc.is_protocol_error:
                raise MCPError(code=exc.code, message=str(exc)) from None
            result = error_result(str(exc))
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            result["resultType"] = "complete"  # required from 2026-07-28 on; unknown to older versions
        return result

    def input_schema(name: str) -> dict[str, Any] | None:
        entry = router.tool(name)
        return None if entry is None else entry.get("inputSchema")

    # The logging capability is deprecated in 2026-07-28 but still part of 2025-11-25, which we serve.
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
    server: Server[Any] = Server(
        SERVER_NAME,
        version=__version__,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
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


def build_http_app(server: Server[Any], router: Router, settings: Settings, supervisor: Any) -> FastAPI:
    """The FastAPI app: ``/mcp`` (the SDK's Streamable HTTP transport) and the health endpoints."""
    manager = StreamableHTTPSessionManager(
        app=server,
        security_settings=transport_security(settings),
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
        """The supervisor and each worker: ids, pids, states, restarts, CPU affinity, load errors."""
        return JSONResponse(status_document(router, supervisor))

    return app


def _plain(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """``_meta`` as msgpack-safe data (it is a TypedDict of JSON values)."""
    return None if not meta else {str(k): v for k, v in meta.items()}
