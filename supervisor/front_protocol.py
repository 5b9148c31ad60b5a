"""uvicorn's httptools protocol with deadlines for a request's headers and body, and the connection
table (``connections.py``) in place of uvicorn's ``limit_concurrency``.

uvicorn closes a keep-alive connection that stays idle between requests (``timeout_keep_alive``) but has
no deadline before the first request, nor for headers or a body that arrive slowly: a socket that never
sends a byte stays open for ever. Here:

- a connection's first request must have its headers in within ``header_timeout`` seconds of the
  connection, and every later one within ``header_timeout`` of its first byte;
- a request's body must be in within ``body_timeout`` seconds of its headers;
- past either deadline the connection is closed (a request already handed to the app sees a
  disconnect). No timer is armed for a request that arrives whole in one read, the common case.

The body deadline runs while uvicorn has paused reading because the app has not consumed 64 KiB of
body yet; the app here reads a body as soon as it gets the request, so that pause is short.

``guarded_protocol(table, ...)`` returns the protocol class to give ``uvicorn.Config(http=...)``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .connections import ConnectionTable

logger = logging.getLogger("mcp_supervisor.front")

_Phase = Literal["headers", "body", None]


def guarded_protocol(table: ConnectionTable, header_timeout: float, body_timeout: float) -> type[Any]:
    """The protocol class for ``uvicorn.Config(http=...)``: every connection it makes is counted in
    ``table`` and held to the two deadlines (seconds)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"table": table, "header_timeout": header_timeout, "body_timeout": body_timeout},
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection; the class attributes are set by ``guarded_protocol``."""

    table: ConnectionTable
    header_timeout: float
    body_timeout: float

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase: _Phase = "headers"
        self._timer: asyncio.TimerHandle | None = None
        self._timer_phase: _Phase = None

    # -- uvicorn's protocol interface --------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else "unknown"
        refusal = self.table.admit(self, address)
        if refusal is not None:
            logger.warning("refusing a connection from %s: %s", address, refusal)
            self.app = _refuse(refusal)  # its request gets 503 and the connection closes
        self._rearm()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._cancel_timer()
        self.table.remove(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # the parser's callbacks below move the phase on
        self._rearm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = "headers"

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self.table.busy(self)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.table.idle(self)

    # -- the connection table ----------------------------------------------------------------------

    def evict(self) -> None:
        """Close this idle connection: the table needs its slot for a new one."""
        self._cancel_timer()
        self.transport.close()

    # -- deadlines ---------------------------------------------------------------------------------

    def _rearm(self) -> None:
        """Keep the timer of the current phase: started when the phase began, not reset by each read."""
        if self._phase == self._timer_phase or self.transport.is_closing():
            return
        self._cancel_timer()
        if self._phase is not None:
            timeout = self.header_timeout if self._phase == "headers" else self.body_timeout
            self._timer = self.loop.call_later(timeout, self._expire)
            self._timer_phase = self._phase

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_phase = None

    def _expire(self) -> None:
        stats = self.table.stats
        if self._timer_phase == "headers":
            stats.header_timeouts += 1
        else:
            stats.body_timeouts += 1
        logger.debug("closing a connection from %s: no complete request %s in time", self.client, self._phase)
        self._timer = None
        self._timer_phase = None
        self.transport.close()


def _refuse(reason: str) -> Any:
    """An ASGI app answering 503 with ``reason`` and closing the connection."""
    body = reason.encode() + b"\n"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return refuse
