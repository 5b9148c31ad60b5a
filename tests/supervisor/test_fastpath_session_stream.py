"""The event stream of a fast-path request on a handshake-era session: the SDK session transport's frames
byte for byte, its keep-alive comments, the last frame last; the request's back-channel.

The frames are compared with what the SDK's own session transport makes of the same message
(``StreamableHTTPServerTransport._create_event_data`` through sse-starlette's encoder); the stream is
driven with a recording ``send`` on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from mcp.server.streamable_http import EventMessage, StreamableHTTPServerTransport
from mcp_types import JSONRPCNotification, LoggingMessageNotification, LoggingMessageNotificationParams
from sse_starlette.event import ensure_bytes
from starlette.types import Message

from supervisor import fastpath_session_stream
from supervisor.fastpath_session_stream import RequestChannel, SessionStream, notification_frame, ping_frame

pytestmark = pytest.mark.anyio


def sdk_frame(method: str, params: dict[str, Any]) -> bytes:
    """What the SDK's session transport sends for a notification its dispatcher wrote."""
    message = JSONRPCNotification(jsonrpc="2.0", method=method, params=dict(params))
    data = StreamableHTTPServerTransport(None)._create_event_data(EventMessage(message))
    return ensure_bytes(data, "\r\n")


@pytest.mark.parametrize(
    "params",
    [
        {"progressToken": "p", "progress": 0.0, "total": 3.0, "message": "naïve ✓"},
        {"progressToken": 2**40, "progress": 1.5},
        {"progressToken": 1, "progress": math.nan, "total": math.inf},
    ],
)
def test_progress_frames_are_the_sdks(params: dict[str, Any]) -> None:
    assert notification_frame("notifications/progress", params) == sdk_frame("notifications/progress", params)


@pytest.mark.parametrize(
    "data",
    [None, "détail", {"step": 1, "none": None}, [1, 2.5, True], {"nan": math.nan}, {"raw": b"ab"}, 2**70],
)
def test_log_frames_are_the_sdks(data: Any) -> None:
    """As ``ServerSession.send_log_message`` builds the params and the dispatcher the notification."""
    params = LoggingMessageNotification(
        params=LoggingMessageNotificationParams(level="info", data=data, logger="it")
    ).model_dump(by_alias=True, mode="json", exclude_none=True)["params"]
    assert notification_frame("notifications/message", params) == sdk_frame("notifications/message", params)


def test_a_ping_is_sse_starlettes_comment() -> None:
    frame = ping_frame()
    assert frame.startswith(b": ping - ") and frame.endswith(b"+00:00\r\n\r\n")


class Recorder:
    """A response's ``send``: records messages; a ping's write can be held until ``release_ping``."""

    def __init__(self, hold_pings: bool = False) -> None:
        self.sent: list[Message] = []
        self.pinged = asyncio.Event()
        self.release_ping = asyncio.Event()
        if not hold_pings:
            self.release_ping.set()

    async def send(self, message: Message) -> None:
        if message.get("body", b"").startswith(b": ping"):
            self.pinged.set()
            await self.release_ping.wait()
        self.sent.append(message)

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.sent if m["type"] == "http.response.body"]


async def test_the_headers_go_at_once_and_the_answer_is_the_last_frame() -> None:
    recorder = Recorder()
    stream = SessionStream(recorder.send, asyncio.get_running_loop(), "abc")
    await stream.open()
    start = recorder.sent[0]
    assert start["status"] == 200
    assert dict(start["headers"])[b"mcp-session-id"] == b"abc"
    assert dict(start["headers"])[b"content-type"] == b"text/event-stream"
    await stream.event(b"event: message\r\ndata: {}\r\n\r\n")
    await stream.finish(7, b'{"ok":true}', None)
    await stream.event(b"too late")
    await stream.end()
    stream.close()
    assert recorder.bodies() == [
        (b"event: message\r\ndata: {}\r\n\r\n", True),
        (b'event: message\r\ndata: {"jsonrpc":"2.0","id":7,"result":{"ok":true}}\r\n\r\n', False),
    ]


async def test_a_session_that_ended_ends_the_stream_without_an_answer() -> None:
    recorder = Recorder()
    stream = SessionStream(recorder.send, asyncio.get_running_loop(), "abc")
    await stream.open()
    await stream.end()
    assert recorder.bodies() == [(b"", False)]


async def test_pings_keep_the_stream_alive_and_the_answer_waits_for_one_being_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastpath_session_stream, "PING_INTERVAL", 0.01)
    recorder = Recorder(hold_pings=True)
    stream = SessionStream(recorder.send, asyncio.get_running_loop(), "abc")
    await stream.open()
    await asyncio.wait_for(recorder.pinged.wait(), 10)
    finishing = asyncio.create_task(stream.finish(1, b"{}", None))
    await asyncio.sleep(0)
    assert not finishing.done()  # the ping holds the response: the answer must not overtake it
    recorder.release_ping.set()
    await asyncio.wait_for(finishing, 10)
    stream.close()
    bodies = recorder.bodies()
    assert bodies[0][0].startswith(b": ping - ") and bodies[-1][1] is False
    assert json.loads(bodies[-1][0].split(b"data: ", 1)[1]) == {"jsonrpc": "2.0", "id": 1, "result": {}}


async def test_the_channel_sends_progress_only_with_a_token_and_nothing_once_closed() -> None:
    recorder = Recorder()
    stream = SessionStream(recorder.send, asyncio.get_running_loop(), "abc")
    await stream.open()
    silent = RequestChannel(None, 1, None, stream)  # type: ignore[arg-type]  # never reaches the session
    await silent.progress(0.5)
    channel = RequestChannel(None, 2, "t", stream)  # type: ignore[arg-type]
    await channel.progress(0.5, 1.0, "half")
    channel.close()
    await channel.progress(1.0)
    await channel.notify("notifications/message", {"level": "info"})
    stream.close()
    assert recorder.bodies() == [
        (notification_frame("notifications/progress", {"progressToken": "t", "progress": 0.5, "total": 1.0, "message": "half"}), True)
    ]  # fmt: skip
    assert not channel.can_send_request
