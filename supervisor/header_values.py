"""``TrimmedMcpHeaders``: the ``Mcp-*`` header values the SDK reads, without the whitespace around them.

RFC 9110 §5.5: a field value excludes the optional whitespace before and after it. uvicorn's
httptools parser keeps it, and the SDK compares ``Mcp-Name``/``Mcp-Method`` with the body untrimmed, so
``Mcp-Name:  echo`` was refused with -32020 (the 2026-07-28 conformance scenario
``http-header-validation`` checks it). The fast path trims on its own; this wrapper gives the SDK path the
same values.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

_OWS = b" \t"


class TrimmedMcpHeaders:
    """ASGI wrapper: every ``mcp-*`` header value of an HTTP request reaches ``app`` trimmed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(
            name.startswith(b"mcp-") and value != value.strip(_OWS) for name, value in scope["headers"]
        ):
            headers = [
                (name, value.strip(_OWS) if name.startswith(b"mcp-") else value)
                for name, value in scope["headers"]
            ]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)
