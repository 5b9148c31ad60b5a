"""The answer to a fast-path request on a handshake-era session, as the SDK's transport sends it in
event-stream mode (``StreamableHTTPServerTransport._handle_post_request`` through sse-starlette's
``EventSourceResponse``):

- status 200 and the headers at once, before the request is served (the session id among them);
- ``event: message`` frames: the request's progress and log notifications and the requests the function
  makes of the client, in the order the call sends them, each rendered by the SDK's own models (so byte
  for byte the SDK's); then the response, last, which ends the stream;
- a comment ``: ping - <UTC time>`` every ``PING_INTERVAL`` seconds while the stream is open;
- a stream whose session ended (DELETE) before the answer ends without one.

``RequestChannel`` is the request's back-channel as the SDK's handler code sees it (a
``DispatchContext``): ``forwarding.call_options`` drives it exactly as it drives the SDK's, so progress,
log levels and requests to the client follow the SDK path's rules.

Concurrency: the caller's task, a ping task and the task that relays the requests sent to the client
write to the response; one lock keeps each frame whole and the final frame last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.server.streamable_http import EventMessage
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.message import MessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import JSONRPCNotification, RequestId
from sse_starlette import ServerSentEvent
from starlette.types import Send

from .fastpath_render import response_body
from .fastpath_stream import sse_event
from .sdk_sessions import Session

PING_INTERVAL = 15.0
"""Seconds between keep-alive comments (sse-starlette's default, which the SDK's responses use)."""
_SEPARATOR = "\r\n"
_TRANSPORT = TransportContext(kind="jsonrpc", can_send_request=True)
"""What the SDK's session dispatcher tells a handler about an event-stream request."""


def ping_frame() -> bytes:
    """sse-starlette's keep-alive comment, with the time it is sent."""
    return ServerSentEvent(comment=f"ping - {datetime.now(UTC)}", sep=_SEPARATOR).encode()


def notification_frame(method: str, params: Mapping[str, Any] | None) -> bytes:
    """A notification's event, as the SDK's dispatcher builds it and its transport renders it."""
    if params is not None:
        message = JSONRPCNotification(jsonrpc="2.0", method=method, params=dict(params))
    else:
        message = JSONRPCNotification(jsonrpc="2.0", method=method)
    return sse_event(message.model_dump_json(by_alias=True, exclude_unset=True).encode())


class SessionStream:
    """The event stream answering one request of session ``session_id``; ``open`` first, ``close``
    last (it stops the pings, never blocks)."""

    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop, session_id: str) -> None:
        self._send = send
        self._loop = loop
        self._headers = [
            (b"cache-control", b"no-cache, no-transform"),
            (b"connection", b"keep-alive"),
            (b"content-type", b"text/event-stream"),
            (b"mcp-session-id", session_id.encode("latin-1")),
            (b"x-accel-buffering", b"no"),
        ]
        self._lock = asyncio.Lock()
        self.done = False
        """Whether the last frame was sent (nothing may follow it)."""
        self._timer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Send the status and headers; pings start."""
        await self._send({"type": "http.response.start", "status": 200, "headers": self._headers})
        self._arm()

    async def event(self, frame: bytes) -> None:
        """Send one frame (dropped once the stream is done).

        Cancellation: cancelling it may leave the frame unsent; the stream stays usable.
        """
        async with self._lock:
            if not self.done:
                await self._send({"type": "http.response.body", "body": frame, "more_body": True})

    async def finish(self, request_id: RequestId, result: bytes | None, error: dict[str, Any] | None) -> None:
        """Send the response (``result``, serialized, or ``error``) and end the stream."""
        await self._last(sse_event(response_body(request_id, result, error)))

    async def end(self) -> None:
        """End the stream without a response (the session ended)."""
        await self._last(b"")

    def close(self) -> None:
        """Stop the pings (a ping being written is cancelled); idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pinger is not None:
            self._pinger.cancel()

    async def _last(self, body: bytes) -> None:
        async with self._lock:
            if not self.done:
                self.done = True
                self.close()
                await self._send({"type": "http.response.body", "body": body, "more_body": False})

    def _arm(self) -> None:
        if not self.done:
            self._timer = self._loop.call_later(PING_INTERVAL, self._ping_due)

    def _ping_due(self) -> None:
        self._timer = None
        self._pinger = self._loop.create_task(self._ping())

    async def _ping(self) -> None:
        await self.event(ping_frame())
        self._pinger = None
        self._arm()


class RequestChannel:
    """The back-channel of request ``request_id`` on ``session`` (the SDK's ``DispatchContext``):
    notifications become frames of ``stream``; a request to the client goes through the session, and
    the frames the session sends for this request (that request) are relayed onto ``stream`` until
    ``close``."""

    message_metadata: MessageMetadata = None

    def __init__(
        self, session: Session, request_id: RequestId, progress_token: str | int | None, stream: SessionStream
    ) -> None:
        self._session = session
        self._request_id = request_id
        self._progress_token = progress_token
        self._stream = stream
        self._closed = False
        self._cancel_requested: anyio.Event | None = None
        self._routed: MemoryObjectReceiveStream[EventMessage] | None = None
        self._relay: asyncio.Task[None] | None = None

    @property
    def transport(self) -> TransportContext:
        return _TRANSPORT

    @property
    def request_id(self) -> RequestId | None:
        return self._request_id

    @property
    def can_send_request(self) -> bool:
        return not self._closed

    @property
    def cancel_requested(self) -> anyio.Event:
        if self._cancel_requested is None:
            self._cancel_requested = anyio.Event()
        return self._cancel_requested

    async def notify(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> None:
        """Send a notification on the request's stream (dropped once the channel is closed)."""
        if not self._closed:
            await self._stream.event(notification_frame(method, params))

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """``notifications/progress`` for the request's token, as the SDK's dispatcher builds it; nothing
        without a token."""
        if self._progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self._progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.notify("notifications/progress", params)

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        """Ask the client (``Session.ask``); the request rides this request's stream.

        Raises:
            NoBackChannelError: the channel is closed (the request was answered).
            MCPError: the client answered with an error, or the session closed.
        """
        if self._closed:
            raise NoBackChannelError(method)
        if self._routed is None:
            self._routed = self._session.route(self._request_id)
            self._relay = asyncio.get_running_loop().create_task(self._relay_frames(self._routed))
        return await self._session.ask(self._request_id, method, params, opts)

    def close(self) -> None:
        """The request is answered: nothing more goes out on its stream from here; idempotent."""
        self._closed = True
        if self._routed is not None:
            self._session.unroute(self._request_id, self._routed)
            self._routed = None
        if self._relay is not None:
            self._relay.cancel()
            self._relay = None

    async def _relay_frames(self, routed: MemoryObjectReceiveStream[EventMessage]) -> None:
        """Write what the session sends for this request (no event ids: no resumability) until the
        stream ends."""
        try:
            async for item in routed:
                await self._stream.event(
                    sse_event(item.message.model_dump_json(by_alias=True, exclude_unset=True).encode())
                )
        except anyio.ClosedResourceError:
            pass
