"""DNS-rebinding protection on every HTTP endpoint, not only ``/mcp``: which ``Host`` and ``Origin``
values are accepted (``transport_security``) and the guard of the paths the SDK does not check.

The SDK checks ``Host`` and ``Origin`` on ``/mcp`` (and the fast path applies the same rule); without
this wrapper ``/healthz``, ``/readyz``, ``/status`` and ``/metrics`` answered any ``Host``, so a web page
on a rebinding domain could read ``/status`` through the user's browser. Here every other path gets the
SDK's own check (``TransportSecurityMiddleware``, with the same settings): a refused ``Host`` gets 421
``Invalid Host header``, a refused ``Origin`` 403 ``Invalid Origin header``, as on ``/mcp``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import Settings

MCP_PATH = "/mcp"
"""Checked by the SDK's transport itself."""
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
DEFAULT_PORTS = {"http": 80, "https": 443}


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The accepted ``Host`` and ``Origin`` values: the loopback ones, the bind address's when it names
    one, ``public_url``'s (the name clients use behind a proxy, which passes their ``Host`` on), and the
    configured extras."""
    hosts = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
    origins = [*LOOPBACK_ORIGINS, *settings.allowed_origins]
    if settings.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(f"{settings.host}:*")
        origins.append(f"http://{settings.host}:*")
    if settings.public_url:
        public_hosts, public_origin = public_names(settings.public_url)
        hosts.extend(public_hosts)
        origins.append(public_origin)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def public_names(url: str) -> tuple[list[str], str]:
    """``(hosts, origin)`` of a public base URL: the ``Host`` values a client sends for it (as written,
    and with the scheme's default port spelled out when the URL leaves it implicit) and its ``Origin``.
    The URL has been validated as http(s) by ``Settings``."""
    parts = urlsplit(url)
    name = parts.hostname or ""
    if ":" in name:  # an IPv6 literal
        name = f"[{name}]"
    default = DEFAULT_PORTS[parts.scheme]
    port = parts.port or default
    authority = name if port == default else f"{name}:{port}"
    hosts = [authority] if port != default else [name, f"{name}:{port}"]
    return hosts, f"{parts.scheme}://{authority}"


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
