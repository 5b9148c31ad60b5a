"""The answer to a fast-path call, as the SDK's single-exchange entry gives it
(``mcp/server/_streamable_http_modern.py``, ``handle_modern_request`` in SSE mode): ``application/json``
when the call ends without having notified the client, else ``text/event-stream``.

The SDK's rule, reproduced here:

- The answer commits to an event stream at the first notification the call sends, or when the call has run
  ``SSE_COMMIT_AFTER`` seconds without one (with a keep-alive ping). A call that ends before either is
  answered in JSON with the error-code → HTTP status table; once the stream is committed the result (or
  the error) is its last event and the status is 200.
- On a committed stream, a ping (``: ping``) follows every ``SSE_COMMIT_AFTER`` seconds without an event.
- Only progress and log messages ride the stream. ``notifications/progress`` only when ``_meta`` carries a
  ``progressToken`` (echoed as sent), ``notifications/message`` only at the levels the SDK's
  ``allowed_log_levels`` lets through for the request's ``io.modelcontextprotocol/logLevel`` (none without
  the key).
- Events are sent in the order the worker sent them, each before the next is taken: the router awaits the
  callbacks in the caller's task (the SDK's zero-buffer channel holds its handler the same way), and the
  result is always last.

Each notification event is byte for byte the SDK's (compact ``json.dumps``, ASCII escapes; data JSON
cannot carry directly, such as bytes or NaN, goes through the SDK's own models). The result event is
rendered like the fast path's JSON answers (``fastpath_render``): the same JSON, non-ASCII unescaped.

Concurrency: the caller's task and, only after ``SSE_COMMIT_AFTER`` of silence, one pinging task write to
the response; each waits for the other's write to end, so frames never interleave and the final event
is the last one sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.connection import allowed_log_levels
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp_types import JSONRPCNotification, LoggingMessageNotificationParams
from starlette.types import Send

from .fastpath_render import response_body
from .router_types import LogCallback, ProgressCallback

SSE_COMMIT_AFTER = 15.0
"""Seconds of silence after which the answer commits to an event stream, and between keep-alive pings."""

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
PING = b": ping\r\n\r\n"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def progress_token(meta: Mapping[str, Any]) -> str | int | None:
    """The request's progress token, as the SDK reads it: a string or an integer (never a bool)."""
    token = meta.get("progressToken")
    return token if type(token) is str or type(token) is int else None


def log_levels(version: str, meta: Mapping[str, Any]) -> frozenset[str]:
    """The log levels the request lets through (the SDK's ``allowed_log_levels``)."""
    return frozenset(allowed_log_levels(version, meta))


def sse_event(data: bytes) -> bytes:
    """One ``event: message`` frame around serialized JSON."""
    return b"event: message\r\ndata: " + data + b"\r\n\r\n"


def progress_event(token: str | int, progress: float, total: float | None, message: str | None) -> bytes:
    """The SDK's ``notifications/progress`` event (``_SingleExchangeDispatchContext.progress``)."""
    params: dict[str, Any] = {"progressToken": token, "progress": progress}
    if total is not None:
        params["total"] = total
    if message is not None:
        params["message"] = message
    return _notification_event("notifications/progress", params, lambda: params)


def log_event(level: str, data: Any, logger_name: str | None) -> bytes:
    """The SDK's ``notifications/message`` event (``ServerSession.send_log_message``: ``None`` fields,
    ``data`` included, are left out)."""
    params: dict[str, Any] = {"level": level}
    if logger_name is not None:
        params["logger"] = logger_name
    if data is not None:
        params["data"] = data

    def through_sdk() -> dict[str, Any]:
        model = LoggingMessageNotificationParams(level=level, data=data, logger=logger_name)  # type: ignore[arg-type]
        return model.model_dump(by_alias=True, mode="json", exclude_none=True)

    return _notification_event("notifications/message", params, through_sdk)


def _notification_event(
    method: str, params: dict[str, Any], through_sdk: Callable[[], dict[str, Any]]
) -> bytes:
    """The event as the SDK serializes it: compact ``json.dumps`` of the notification; params that are
    not plain JSON data (bytes, NaN, ...) are first made so by the SDK's models (``through_sdk``), as
    the SDK does."""
    try:
        data = json.dumps(
            {"jsonrpc": "2.0", "method": method, "params": params}, separators=(",", ":"), allow_nan=False
        )
    except (TypeError, ValueError):
        notification = JSONRPCNotification(jsonrpc="2.0", method=method, params=through_sdk())
        body = notification.model_dump(mode="json", by_alias=True, exclude_none=True)
        data = json.dumps(body, separators=(",", ":"))
    return sse_event(data.encode())


async def answer_json(
    send: Send, request_id: int | str, result: bytes | None, error: dict[str, Any] | None = None
) -> int:
    """Send one JSON-RPC response as ``application/json``; returns the HTTP status."""
    status = 200 if error is None else ERROR_CODE_HTTP_STATUS.get(error["code"], 200)
    body = response_body(request_id, result, error)
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


class ResponseStream:
    """The response of one call: nothing sent until a notification, ``SSE_COMMIT_AFTER`` of silence, or
    ``finish``. Made in the caller's task, on its running loop; ``close`` must follow."""

    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        self._send = send
        self._loop = loop
        self.committed = False
        """Whether ``text/event-stream`` was sent (the answer is an event stream from then on)."""
        self._closed = False
        self._pinger: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    def callbacks(self, version: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        """``Router.call``'s keyword arguments that forward the call's progress and log messages here,
        as far as the request asked for them (a callback only when something can pass)."""
        options: dict[str, Any] = {}
        token = progress_token(meta)
        if token is not None:
            options["progress_token"] = token
            options["on_progress"] = self._progress_sender(token)
        levels = log_levels(version, meta)
        if levels:
            options["on_log"] = self._log_sender(levels)
        return options

    def _progress_sender(self, token: str | int) -> ProgressCallback:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            await self.notify(progress_event(token, progress, total, message))

        return on_progress

    def _log_sender(self, levels: frozenset[str]) -> LogCallback:
        async def on_log(level: str, data: Any, logger_name: str | None) -> None:
            if level in levels:
                await self.notify(log_event(level, data, logger_name))

        return on_log

    async def notify(self, event: bytes) -> None:
        """Send one notification event, committing the stream first if it is not yet.

        Cancellation: cancelling it may leave the event unsent; the stream stays usable for ``close``.
        """
        await self._quiet()
        await self._write(event)
        self._arm()

    async def finish(self, request_id: int | str, result: bytes | None, error: dict[str, Any] | None) -> int:
        """Send the answer: the last event of a committed stream, else JSON; returns the HTTP status."""
        await self._quiet()
        if not self.committed:
            return await answer_json(self._send, request_id, result, error)
        body = sse_event(response_body(request_id, result, error))
        await self._send({"type": "http.response.body", "body": body, "more_body": False})
        return 200

    def close(self) -> None:
        """Stop the keep-alive (a ping being written is cancelled); idempotent, never blocks."""
        self._closed = True
        self._disarm()
        if self._pinger is not None:
            self._pinger.cancel()

    async def _quiet(self) -> None:
        """Disarm the keep-alive and wait for a ping being written, so this task writes next."""
        self._disarm()
        pinger = self._pinger
        if pinger is not None:
            await asyncio.shield(pinger)  # one send: let it end rather than cut a frame
            self._disarm()  # the ping re-armed it

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if not self._closed:
            self._timer = self._loop.call_later(SSE_COMMIT_AFTER, self._ping_due)

    def _ping_due(self) -> None:
        self._timer = None
        self._pinger = self._loop.create_task(self._ping())

    async def _ping(self) -> None:
        await self._write(PING)
        self._pinger = None
        self._arm()

    async def _write(self, body: bytes) -> None:
        if not self.committed:
            self.committed = True
            await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await self._send({"type": "http.response.body", "body": body, "more_body": True})
