"""DNS-rebinding protection on every HTTP endpoint, not only ``/mcp``.

The SDK checks ``Host`` and ``Origin`` on ``/mcp`` (and the fast path applies the same rule); without
this wrapper ``/healthz``, ``/readyz``, ``/status`` and ``/metrics`` answered any ``Host``, so a web page
on a rebinding domain could read ``/status`` through the user's browser. Here every other path gets the
SDK's own check (``TransportSecurityMiddleware``, with the same settings): a refused ``Host`` gets 421
``Invalid Host header``, a refused ``Origin`` 403 ``Invalid Origin header``, as on ``/mcp``.
"""

from __future__ import annotations

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

MCP_PATH = "/mcp"
"""Checked by the SDK's transport itself."""


class HostGuard:
    """ASGI wrapper: HTTP requests to any path but ``/mcp`` pass only with an allowed Host and Origin."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings) -> None:
        self.app = app
        self._check = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != MCP_PATH:
            refusal = await self._check.validate_request(Request(scope), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
