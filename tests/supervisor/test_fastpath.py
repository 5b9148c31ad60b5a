"""Unit tests of the fast path's own behaviour, driven as an ASGI app with a stand-in router.

Whether its answers equal the SDK's is tested end to end in tests/integration/test_fastpath.py; these
cover what that cannot reach quickly: the switch to an event stream for a long call, cancellation when
the client disconnects, and the replay of the body to the SDK.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp.server.lowlevel.server import Server
from mcp_types import methods as spec_methods
from starlette.types import Message

from supervisor import fastpath_stream
from supervisor.catalog import Catalog
from supervisor.fastpath import FastPath, FastPathStats
from supervisor.input_required import InputFlow

pytestmark = pytest.mark.anyio

VERSION = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
}


class StandInRouter:
    """What the fast path asks of the router; ``call`` waits until the test releases it."""

    request_timeout = 30.0
    catalog_version = 1

    def __init__(self) -> None:
        self.catalog = Catalog([])  # no task-capable tool: every call is a plain one
        self.result: dict[str, Any] = {"content": [{"type": "text", "text": "done"}], "isError": False}
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()
        self.options: dict[str, Any] = {}
        self.notes: list[tuple[Any, ...]] = []
        """What the call reports before it waits: ("progress", progress, total, message) or ("log", level,
        data, logger)."""

    async def wait_settled(self) -> None:
        return None

    def tools(self) -> list[dict[str, Any]]:
        return [{"name": "slow", "inputSchema": {"type": "object"}, "metadata": {}}]

    def tool(self, name: str) -> dict[str, Any] | None:
        return self.tools()[0] if name == "slow" else None

    async def call(self, name: str, arguments: Any, **options: Any) -> dict[str, Any]:
        self.options = options
        for kind, *values in self.notes:  # as the router does: only through the callbacks it was given
            callback = options.get(f"on_{kind}")
            if callback is not None:
                await callback(*values)
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return dict(self.result)


class Exchange:
    """One HTTP exchange: the request's messages in, the response's messages out."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.scope = {
            "type": "http",
            "path": "/mcp",
            "method": "POST",
            "headers": [(key.encode(), value.encode()) for key, value in headers.items()],
        }
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.incoming.put_nowait({"type": "http.request", "body": body, "more_body": False})
        self.sent: list[Message] = []
        self.streaming = asyncio.Event()

    async def receive(self) -> Message:
        return await self.incoming.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.start" and dict(message["headers"]).get(b"content-type") == (
            b"text/event-stream"
        ):
            self.streaming.set()


def request(
    name: str = "slow", meta: dict[str, Any] | None = None, **header_changes: str
) -> tuple[bytes, dict[str, str]]:
    params = {"name": name, "_meta": {**META, **(meta or {})}}
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
    headers = {
        "host": "127.0.0.1:8001",
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": VERSION,
        "mcp-method": "tools/call",
        "mcp-name": name,
        **header_changes,
    }
    return json.dumps(body).encode(), headers


def build(router: StandInRouter, inner: Any = None) -> tuple[FastPath, FastPathStats]:
    async def no_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the fast path handed over a request it should have served")

    stats = FastPathStats()
    app = FastPath(
        inner or no_app,
        server=Server("mcp-supervisor", version="0"),
        router=router,  # type: ignore[arg-type]
        input_flow=InputFlow(("k" * 32,)),
        allowed_hosts=["127.0.0.1:*"],
        allowed_origins=["http://127.0.0.1:*"],
        max_body_size=1 << 20,
        stats=stats,
    )
    return app, stats


async def within(awaitable: Any, seconds: float = 10.0) -> Any:
    return await asyncio.wait_for(awaitable, seconds)


async def test_a_long_call_becomes_an_event_stream_with_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath_stream, "SSE_COMMIT_AFTER", 0.01)
    router = StandInRouter()
    app, stats = build(router)
    exchange = Exchange(*request())
    serving = asyncio.create_task(app(exchange.scope, exchange.receive, exchange.send))
    await within(exchange.streaming.wait())
    router.release.set()
    await within(serving)
    bodies = [message["body"] for message in exchange.sent if message["type"] == "http.response.body"]
    assert bodies[0] == b": ping\r\n\r\n"
    last = bodies[-1].decode()
    assert last.startswith("event: message\r\ndata: ") and last.endswith("\r\n\r\n")
    response = json.loads(last.split("data: ", 1)[1])
    assert response["id"] == 3 and response["result"]["content"] == [{"type": "text", "text": "done"}]
    assert response["result"]["resultType"] == "complete"
    assert stats.served == 1


async def test_a_quick_call_is_plain_json() -> None:
    router = StandInRouter()
    router.release.set()
    app, _ = build(router)
    exchange = Exchange(*request())
    await within(app(exchange.scope, exchange.receive, exchange.send))
    start, body = exchange.sent
    assert start["status"] == 200 and dict(start["headers"])[b"content-type"] == b"application/json"
    assert int(dict(start["headers"])[b"content-length"]) == len(body["body"])
    assert json.loads(body["body"])["result"]["isError"] is False


async def test_a_disconnect_cancels_the_call_and_sends_nothing() -> None:
    router = StandInRouter()
    app, _ = build(router)
    exchange = Exchange(*request())
    serving = asyncio.create_task(app(exchange.scope, exchange.receive, exchange.send))
    await within(router.started.wait())
    exchange.incoming.put_nowait({"type": "http.disconnect"})
    await within(router.cancelled.wait())
    await within(serving)  # returns normally: the server's task is not left cancelled
    assert not serving.cancelled()
    assert exchange.sent == []


async def test_a_refused_request_reaches_the_sdk_with_its_body() -> None:
    received: list[bytes] = []

    async def sdk(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        received.append(message["body"])
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    router = StandInRouter()
    app, stats = build(router, sdk)
    body, headers = request(**{"mcp-name": "other"})
    exchange = Exchange(body, headers)
    await within(app(exchange.scope, exchange.receive, exchange.send))
    assert received == [body]
    assert (stats.served, stats.handed_over) == (0, 1)
    assert not router.started.is_set()


@pytest.mark.parametrize(
    "changes",
    [
        {"host": "evil.example:8001"},
        {"origin": "http://evil.example"},
        {"accept": "application/json"},
        {"content-type": "text/plain"},
        {"mcp-protocol-version": "2025-11-25"},
    ],
)
async def test_headers_the_sdk_would_refuse_are_handed_over(changes: dict[str, str]) -> None:
    handed: list[bool] = []

    async def sdk(scope: Any, receive: Any, send: Any) -> None:
        handed.append(True)

    router = StandInRouter()
    app, _ = build(router, sdk)
    exchange = Exchange(*request(**changes))
    await within(app(exchange.scope, exchange.receive, exchange.send))
    assert handed == [True]


async def test_a_result_orjson_cannot_render_is_rendered_as_the_sdk_does() -> None:
    """An integer past 64 bits in structured content: orjson refuses it, the SDK's json.dumps does not."""
    router = StandInRouter()
    router.release.set()
    big = 2**70
    router.result = {
        "content": [{"type": "text", "text": str(big)}],
        "structuredContent": {"value": big},
        "isError": False,
    }
    app, _ = build(router)
    exchange = Exchange(*request())
    await within(app(exchange.scope, exchange.receive, exchange.send))
    start, body = exchange.sent
    assert start["status"] == 200
    result = json.loads(body["body"])["result"]
    assert result["structuredContent"] == {"value": big}
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-supervisor"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("resources/list", {}),
        ("resources/templates/list", {}),
        ("resources/read", {"uri": "config://app"}),
        ("prompts/list", {}),
        ("prompts/get", {"name": "greet"}),
        (
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": "a", "value": ""}},
        ),
    ],
)
async def test_the_other_kinds_reach_the_sdk_unchanged(method: str, params: dict[str, Any]) -> None:
    """Issue 13: the fast path stays for tools/call and tools/list; every other kind goes to the SDK."""
    received: list[bytes] = []

    async def sdk(scope: Any, receive: Any, send: Any) -> None:
        received.append((await receive())["body"])

    router = StandInRouter()
    app, stats = build(router, sdk)
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 4, "method": method, "params": {**params, "_meta": META}}
    ).encode()
    _, headers = request()
    headers["mcp-method"] = method
    del headers["mcp-name"]
    exchange = Exchange(body, headers)
    await within(app(exchange.scope, exchange.receive, exchange.send))
    assert received == [body]
    assert (stats.served, stats.handed_over) == (0, 1)
    assert not router.started.is_set()


LEVEL = "io.modelcontextprotocol/logLevel"


async def test_progress_and_logs_the_client_asked_for_stream_before_the_result() -> None:
    """Issue 15: the token reaches the worker, log levels below the requested one are dropped, the
    notifications are events of the response before the result."""
    router = StandInRouter()
    router.release.set()
    router.notes = [
        ("progress", 0.5, 1.0, None),
        ("log", "debug", "dropped", None),
        ("log", "info", "kept", "it"),
    ]
    app, stats = build(router)
    exchange = Exchange(*request(meta={"progressToken": 5, LEVEL: "info"}))
    await within(app(exchange.scope, exchange.receive, exchange.send))
    assert router.options["progress_token"] == 5
    assert exchange.streaming.is_set()
    bodies = [message["body"] for message in exchange.sent if message["type"] == "http.response.body"]
    events = [json.loads(body.split(b"data: ", 1)[1]) for body in bodies]
    assert [event.get("method") for event in events] == [
        "notifications/progress",
        "notifications/message",
        None,
    ]
    assert events[0]["params"] == {"progressToken": 5, "progress": 0.5, "total": 1.0}
    assert events[1]["params"] == {"level": "info", "logger": "it", "data": "kept"}
    assert events[2]["result"]["content"] == [{"type": "text", "text": "done"}]
    assert (stats.served, stats.handed_over) == (1, 0)


async def test_a_call_that_asked_but_got_no_notification_is_answered_in_json() -> None:
    router = StandInRouter()
    router.release.set()
    router.notes = [("log", "info", "below the level", None)]
    app, _ = build(router)
    exchange = Exchange(*request(meta={"progressToken": "t", LEVEL: "error"}))
    await within(app(exchange.scope, exchange.receive, exchange.send))
    start, body = exchange.sent
    assert dict(start["headers"])[b"content-type"] == b"application/json"
    assert json.loads(body["body"])["result"]["isError"] is False


async def test_a_disconnect_cancels_a_streaming_call() -> None:
    router = StandInRouter()
    router.notes = [("progress", 0.0, None, "started")]
    app, _ = build(router)
    exchange = Exchange(*request(meta={"progressToken": "t"}))
    serving = asyncio.create_task(app(exchange.scope, exchange.receive, exchange.send))
    await within(router.started.wait())
    exchange.incoming.put_nowait({"type": "http.disconnect"})
    await within(router.cancelled.wait())
    await within(serving)
    assert not serving.cancelled()
    assert [message.get("more_body") for message in exchange.sent] == [None, True]  # no answer after it


@pytest.mark.parametrize(
    "meta", [{"progressToken": True}, {"progressToken": 1.5}, {"progressToken": None}, {LEVEL: "loud"}]
)
async def test_notification_requests_the_sdk_treats_otherwise_are_handed_over(meta: dict[str, Any]) -> None:
    handed: list[bool] = []

    async def sdk(scope: Any, receive: Any, send: Any) -> None:
        handed.append(True)

    router = StandInRouter()
    app, stats = build(router, sdk)
    exchange = Exchange(*request(meta=meta))
    await within(app(exchange.scope, exchange.receive, exchange.send))
    assert handed == [True] and stats.handed_over == 1


async def test_a_new_progress_token_does_not_validate_the_params_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client sends a new token with every call; the remembered validation must still hold."""
    validated: list[str] = []
    validate = spec_methods.validate_client_request

    def counting(method: str, version: str, params: Any) -> Any:
        validated.append(method)
        return validate(method, version, params)

    monkeypatch.setattr(spec_methods, "validate_client_request", counting)
    router = StandInRouter()
    router.release.set()
    app, stats = build(router)
    for token in ("a", "b", 3):
        exchange = Exchange(*request(meta={"progressToken": token, LEVEL: "info"}))
        await within(app(exchange.scope, exchange.receive, exchange.send))
    assert validated == ["tools/call"] and stats.served == 3
