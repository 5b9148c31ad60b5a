"""The fast path's event stream: the SDK's events byte for byte, its JSON-or-SSE rule, keep-alive pings.

The events are compared with what the SDK's own single-exchange dispatch context writes to its sink
(issue 15); the stream's behaviour is driven with a recording ``send`` on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import anyio
import pytest
from mcp.server._streamable_http_modern import _SingleExchangeDispatchContext
from mcp.shared.transport_context import TransportContext
from mcp_types import LoggingMessageNotification, LoggingMessageNotificationParams
from starlette.types import Message

from supervisor import fastpath_stream
from supervisor.fastpath_stream import (
    PING,
    SSE_HEADERS,
    ResponseStream,
    log_event,
    log_levels,
    progress_event,
    progress_token,
)

pytestmark = pytest.mark.anyio

VERSION = "2026-07-28"
LEVEL = "io.modelcontextprotocol/logLevel"


async def sdk_event(token: str | int | None, emit: Any) -> bytes:
    """The one event the SDK's dispatch context writes for ``emit(dctx)``."""
    sink, received = anyio.create_memory_object_stream[bytes](1)
    dctx = _SingleExchangeDispatchContext(
        transport=TransportContext(kind="streamable-http", can_send_request=False),
        request_id=1,
        message_metadata=None,
        progress_token=token,
        sink=sink,
    )
    async with sink, received:
        await emit(dctx)
        return received.receive_nowait()


@pytest.mark.parametrize("token", ["p-1", 0, 2**40])
@pytest.mark.parametrize(
    ("progress", "total", "message"),
    [
        (0.0, 3.0, "starting"),
        (1.5, None, None),
        (3.0, 3.0, None),
        (0.5, None, "naïve ✓"),
        (math.nan, math.inf, "x"),
    ],
)
async def test_progress_events_are_the_sdks(
    token: str | int, progress: float, total: float | None, message: str | None
) -> None:
    expected = await sdk_event(token, lambda dctx: dctx.progress(progress, total, message))
    assert progress_event(token, progress, total, message) == expected


@pytest.mark.parametrize("logger_name", [None, "it"])
@pytest.mark.parametrize(
    "data",
    [
        None,
        "détail",
        {"step": 1, "none": None},
        [1, 2.5, True, None],
        {"nan": math.nan},
        {"raw": b"ab"},
        2**70,
    ],
)
async def test_log_events_are_the_sdks(data: Any, logger_name: str | None) -> None:
    """As ``ServerSession.send_log_message`` sends it: the notification's model dumped, then notified."""
    notification = LoggingMessageNotification(
        params=LoggingMessageNotificationParams(level="warning", data=data, logger=logger_name)
    ).model_dump(by_alias=True, mode="json", exclude_none=True)
    expected = await sdk_event(None, lambda dctx: dctx.notify(notification["method"], notification["params"]))
    assert log_event("warning", data, logger_name) == expected


@pytest.mark.parametrize(
    ("meta", "token"),
    [({"progressToken": "a"}, "a"), ({"progressToken": 0}, 0), ({"progressToken": True}, None), ({}, None)],
)
def test_the_progress_token_is_read_as_the_sdk_reads_it(meta: dict[str, Any], token: Any) -> None:
    assert progress_token(meta) == token and type(progress_token(meta)) is type(token)


def test_log_levels_are_the_requested_one_and_above_and_none_without_the_key() -> None:
    assert log_levels(VERSION, {}) == frozenset()
    assert log_levels(VERSION, {LEVEL: "error"}) == {"error", "critical", "alert", "emergency"}
    assert len(log_levels(VERSION, {LEVEL: "debug"})) == 8


class Recorder:
    """A response's ``send``: records messages; a ping's write can be held until ``release_ping``."""

    def __init__(self, hold_pings: bool = False) -> None:
        self.sent: list[Message] = []
        self.pinged = asyncio.Event()
        self.release_ping = asyncio.Event()
        if not hold_pings:
            self.release_ping.set()

    async def send(self, message: Message) -> None:
        if message.get("body") == PING:
            self.pinged.set()
            await self.release_ping.wait()
        self.sent.append(message)

    def bodies(self) -> list[bytes]:
        return [message["body"] for message in self.sent if message["type"] == "http.response.body"]


def make_stream(recorder: Recorder) -> ResponseStream:
    return ResponseStream(recorder.send, asyncio.get_running_loop())


async def test_a_call_that_notified_nothing_is_answered_in_json_with_the_status_of_its_error() -> None:
    recorder = Recorder()
    stream = make_stream(recorder)
    status = await stream.finish(3, None, {"code": -32602, "message": "unknown tool"})
    stream.close()
    start, body = recorder.sent
    assert status == start["status"] == 400
    assert dict(start["headers"])[b"content-type"] == b"application/json"
    assert json.loads(body["body"]) == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {"code": -32602, "message": "unknown tool"},
    }


async def test_the_first_notification_commits_the_stream_and_the_answer_is_its_last_event() -> None:
    recorder = Recorder()
    stream = make_stream(recorder)
    options = stream.callbacks(VERSION, {"progressToken": "t", LEVEL: "info"})
    assert options["progress_token"] == "t"
    await options["on_log"]("debug", "dropped", None)
    assert recorder.sent == []  # below the requested level: not a notification, nothing committed
    await options["on_progress"](1.0, None, None)
    await options["on_log"]("info", "kept", None)
    status = await stream.finish(3, None, {"code": -32602, "message": "late error"})
    stream.close()
    assert status == 200  # the stream is committed: the error is an event
    assert recorder.sent[0] == {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS}
    assert recorder.bodies() == [
        progress_event("t", 1.0, None, None),
        log_event("info", "kept", None),
        b'event: message\r\ndata: {"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"late error"}}\r\n\r\n',
    ]
    assert [message.get("more_body") for message in recorder.sent[1:]] == [True, True, False]


async def test_only_what_was_asked_for_has_a_callback() -> None:
    stream = make_stream(Recorder())
    assert stream.callbacks(VERSION, {}) == {}
    assert stream.callbacks(VERSION, {"progressToken": True}) == {}
    assert set(stream.callbacks(VERSION, {LEVEL: "info"})) == {"on_log"}
    stream.close()


async def test_silence_commits_with_a_ping_and_a_notification_waits_for_a_ping_being_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastpath_stream, "SSE_COMMIT_AFTER", 0.01)
    recorder = Recorder(hold_pings=True)
    stream = make_stream(recorder)
    await asyncio.wait_for(recorder.pinged.wait(), 10)  # the ping's write is held
    notifying = asyncio.create_task(stream.notify(b"event"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not notifying.done() and recorder.bodies() == []
    recorder.release_ping.set()
    await asyncio.wait_for(notifying, 10)
    status = await stream.finish(3, b"{}", None)
    stream.close()
    assert status == 200
    assert recorder.sent[0]["headers"] == SSE_HEADERS
    bodies = recorder.bodies()
    assert bodies[:2] == [PING, b"event"] and bodies[-1].startswith(b"event: message\r\ndata: ")
    assert set(bodies[2:-1]) <= {PING}  # pings only if the test's loop was slow


async def test_nothing_is_sent_after_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath_stream, "SSE_COMMIT_AFTER", 0.0)
    recorder = Recorder()
    stream = make_stream(recorder)
    stream.close()
    for _ in range(5):
        await asyncio.sleep(0)
    assert recorder.sent == []
