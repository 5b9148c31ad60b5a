"""Issue 15: the fast path on handshake-era sessions answers exactly what the SDK's session answers.

Two real supervisors (``fast_and_sdk``): one with the fast path, one with ``fast_path = false``. On each, a
session is opened the way a 2025-11-25 client opens it (``initialize``, ``notifications/initialized``),
and every request below is sent on it (or on a deleted, unknown or missing session id) to both. The
answers must be equal: status, headers (but ``date``; session ids replaced by a placeholder), every event
before the last byte for byte (the notifications), and the last one decoded (the response: the fast
path's keys come in the worker's order, the SDK's in its models' order). The fast-path supervisor's
``/status`` then shows it answered the requests it should have and handed the others over, so the
comparison fails if the fast path never engages.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp import Client

from tests.conftest import RunningSupervisor
from tests.integration.test_fastpath import TOOLS, fast_and_sdk, posts

VERSION = "2025-11-25"
ID_PLACEHOLDER = "<session>"


@dataclass
class SessionCase:
    name: str
    method: str | None = None
    params: dict[str, Any] | None = None
    fast: bool = True
    """Whether the fast path answers it (else it is handed to the SDK)."""
    session: str = "open"
    """Which session id the request carries: ``open``, ``deleted``, ``unknown`` or ``none``."""
    headers: dict[str, str | None] = field(default_factory=dict)
    """Header changes; ``None`` removes one."""
    body: bytes | None = None
    """A raw body instead of the request built from ``method`` and ``params``."""
    request_id: int | str = 11

    def request(self, session_id: str | None) -> tuple[dict[str, str], bytes]:
        headers: dict[str, str | None] = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": VERSION,
            "mcp-session-id": session_id,
            **self.headers,
        }
        body = self.body
        if body is None:
            message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.request_id, "method": self.method}
            if self.params is not None:
                message["params"] = self.params
            body = json.dumps(message).encode()
        return {key: value for key, value in headers.items() if value is not None}, body


def call(name: str, arguments: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    if meta:
        params["_meta"] = meta
    return params


CASES = [
    SessionCase("text result", "tools/call", call("echo", {"message": "hé"})),
    SessionCase("string id", "tools/call", call("echo", {"message": "hi"}), request_id="abc"),
    SessionCase("arguments omitted", "tools/call", call("it_too_slow")),
    SessionCase("structured result", "tools/call", call("it_point", {"x": 1, "y": 2})),
    SessionCase("trio worker", "tools/call", call("it_add", {"a": 2, "b": 3})),
    SessionCase("tool raises", "tools/call", call("it_fail", {"message": "boom"})),
    SessionCase("tool deadline", "tools/call", call("it_too_slow", {})),
    SessionCase("invalid output", "tools/call", call("it_bad_output", {})),
    SessionCase("unknown tool", "tools/call", call("no_such_tool", {})),
    SessionCase("invalid arguments", "tools/call", call("it_point", {"x": "one", "y": 2})),
    SessionCase("sampling without the capability", "tools/call", call("it_ask_llm", {"prompt": "hi"})),
    SessionCase("a refusal the tool handles", "tools/call", call("it_request_refused", {})),
    SessionCase("the client's _meta as sent", "tools/call", call("it_meta", {}, progressToken="t", k={"v": 1})),
    SessionCase("list", "tools/list"),
    SessionCase("list with empty params", "tools/list", {}),
    SessionCase("ping", "ping"),
    SessionCase("ping with _meta", "ping", {"_meta": {"k": "v"}}),
    # notifications on the request's stream, byte for byte, in the order the tool sent them
    SessionCase("progress and every log", "tools/call", call("it_notify", {}, progressToken="p-1")),
    SessionCase("progress, Trio worker", "tools/call", call("it_notify_trio", {}, progressToken=7)),
    SessionCase("logs only: no token", "tools/call", call("it_notify", {})),
    SessionCase("the existing log tool", "tools/call", call("it_log", {})),
    SessionCase("notified, then the deadline", "tools/call", call("it_notify_then_too_slow", {}, progressToken=1)),
    SessionCase("raise the level to warning", "logging/setLevel", {"level": "warning"}, fast=False),
    SessionCase("logs from warning only", "tools/call", call("it_notify", {}, progressToken="p-2")),
    SessionCase("back to debug", "logging/setLevel", {"level": "debug"}, fast=False),
    # the protocol version header: the session is served at its negotiated version whatever handshake
    # version the header names (or none); any other value goes to the 2026-07-28 entry
    SessionCase("an older handshake version", "tools/call", call("echo", {"message": "v"}), headers={"mcp-protocol-version": "2025-06-18"}),
    SessionCase("no version header", "tools/call", call("echo", {"message": "v"}), headers={"mcp-protocol-version": None}),
    SessionCase("an unknown version", "tools/call", call("echo", {"message": "v"}), fast=False, headers={"mcp-protocol-version": "1999-01-01"}),
    SessionCase("the stateless version", "tools/call", call("echo", {"message": "v"}), fast=False, headers={"mcp-protocol-version": "2026-07-28"}),
    # session ids the SDK refuses
    SessionCase("unknown session", "tools/call", call("echo", {"message": "hi"}), fast=False, session="unknown"),
    SessionCase("deleted session", "tools/call", call("echo", {"message": "hi"}), fast=False, session="deleted"),
    SessionCase("no session id", "tools/call", call("echo", {"message": "hi"}), fast=False, session="none"),
    SessionCase("list on a deleted session", "tools/list", fast=False, session="deleted"),
    # handed to the SDK: it decides the answer
    SessionCase("progress token true", "tools/call", call("it_notify", {}, progressToken=True), fast=False),
    SessionCase("list with a cursor", "tools/list", {"cursor": "x"}, fast=False),
    SessionCase("name not a string", "tools/call", {"name": 5}, fast=False),
    SessionCase("arguments not an object", "tools/call", {"name": "echo", "arguments": [1]}, fast=False),
    SessionCase("another method", "prompts/list", fast=False),
    SessionCase("a notification", fast=False, body=b'{"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}'),
    SessionCase("bad JSON", fast=False, body=b'{"jsonrpc": "2.0", "id": 1,'),
    SessionCase("batch", fast=False, body=b"[]"),
    SessionCase("an unknown envelope key", fast=False, body=b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "x": 1}'),
    SessionCase("foreign Origin", "ping", fast=False, headers={"origin": "http://evil.example"}),
    SessionCase("no Accept for SSE", "ping", fast=False, headers={"accept": "application/json"}),
    SessionCase("a Content-Type the transport refuses", "ping", fast=False, headers={"content-type": "application/jsonx"}),
]  # fmt: skip


HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def open_session(server: RunningSupervisor, capabilities: dict[str, Any] | None = None) -> str:
    """``initialize`` and ``notifications/initialized``, as a 2025-11-25 client opens a session."""
    params = {
        "protocolVersion": VERSION,
        "capabilities": capabilities or {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    opened = httpx.post(
        server.url,
        json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
        headers=HEADERS,
        timeout=30,
    )
    assert opened.status_code == 200, opened.text
    session_id = opened.headers["mcp-session-id"]
    initialized = httpx.post(
        server.url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={**HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": VERSION},
        timeout=30,
    )
    assert initialized.status_code == 202
    return session_id


def delete_session(server: RunningSupervisor, session_id: str) -> None:
    headers = {**HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": VERSION}
    assert httpx.delete(server.url, headers=headers, timeout=30).status_code == 200


def sessions_of(server: RunningSupervisor) -> dict[str, str | None]:
    """The session ids a case names: an open session, a deleted one, one never opened, none."""
    deleted = open_session(server)
    delete_session(server, deleted)
    return {"open": open_session(server), "deleted": deleted, "unknown": "0" * 32, "none": None}


def exchange(server: RunningSupervisor, session_id: str | None, case: SessionCase) -> tuple[Any, ...]:
    """The status, the headers but ``date`` (session ids replaced), the events before the last exactly
    as sent, and the last event (or the JSON body, or the text) decoded."""
    headers, body = case.request(session_id)
    response = httpx.post(server.url, content=body, headers=headers, timeout=30)
    kept = {name: value for name, value in response.headers.items() if name != "date"}
    if "mcp-session-id" in kept:
        kept["mcp-session-id"] = ID_PLACEHOLDER
    if not kept.get("content-type", "").startswith("text/event-stream"):
        try:
            decoded = response.json() if response.content else None
        except json.JSONDecodeError:
            decoded = response.text
        return response.status_code, kept, [], decoded
    *events, last, end = response.content.split(b"\r\n\r\n")
    assert end == b"" and last.startswith(b"event: message\r\ndata: "), response.content
    return response.status_code, kept, events, json.loads(last.split(b"data: ", 1)[1])


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RunningSupervisor, RunningSupervisor]]:
    with fast_and_sdk("--tools", TOOLS, "--no-task-queue") as pair:
        yield pair


def test_every_session_answer_is_the_sdks(servers: tuple[RunningSupervisor, RunningSupervisor]) -> None:
    fast, sdk = servers
    fast_ids, sdk_ids = sessions_of(fast), sessions_of(sdk)
    before = posts(fast)
    for case in CASES:
        assert exchange(fast, fast_ids[case.session], case) == exchange(sdk, sdk_ids[case.session], case), (
            case.name
        )
    after = posts(fast)
    assert after["fast_path"] - before["fast_path"] == sum(case.fast for case in CASES)
    assert after["sdk"] - before["sdk"] == sum(not case.fast for case in CASES)
    assert posts(sdk)["fast_path"] == 0


def test_a_tool_sees_the_clients_meta_as_sent(servers: tuple[RunningSupervisor, RunningSupervisor]) -> None:
    """On both paths (the comparison holds the SDK path to it too): ``progressToken`` under its own name."""
    for server in servers:
        case = next(case for case in CASES if case.name == "the client's _meta as sent")
        _, _, _, last = exchange(server, open_session(server), case)
        assert last["result"]["structuredContent"] == {"progressToken": "t", "k": {"v": 1}}


def test_notifications_arrive_in_order_before_the_result(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    """What the comparison holds the SDK to as well: the interleaving the tool made (every level: no
    ``logging/setLevel`` yet), the token echoed, the response last."""
    fast, _ = servers
    session_id = open_session(fast)
    case = next(case for case in CASES if case.name == "progress and every log")
    status, headers, events, last = exchange(fast, session_id, case)
    assert (status, headers["content-type"]) == (200, "text/event-stream")
    decoded = [json.loads(event.split(b"data: ", 1)[1]) for event in events]
    assert [(event["method"], event["params"]) for event in decoded] == [
        ("notifications/progress", {"progressToken": "p-1", "progress": 0.0, "total": 3.0, "message": "starting"}),
        ("notifications/message", {"level": "debug", "logger": "it", "data": "détail"}),
        ("notifications/message", {"level": "info", "data": {"step": 1, "none": None, "text": "naïve ✓"}}),
        ("notifications/progress", {"progressToken": "p-1", "progress": 1.5}),
        ("notifications/message", {"level": "warning", "logger": "it"}),
        ("notifications/message", {"level": "error", "data": [1, 2.5, True]}),
        ("notifications/progress", {"progressToken": "p-1", "progress": 3.0, "total": 3.0}),
    ]  # fmt: skip
    assert last["id"] == 11 and last["result"]["content"] == [{"type": "text", "text": "notified"}]


def call_waiting_for_cancel(
    server: RunningSupervisor, session_id: str, marker: Path
) -> tuple[httpx.Client, Any]:
    """Start a call of ``it_wait_for_cancel_trio`` on the session; returns once its first progress
    notification arrived (the tool runs), with the response still open."""
    client = httpx.Client(timeout=30)
    case = SessionCase(
        "wait", "tools/call", call("it_wait_for_cancel_trio", {"marker": str(marker)}, progressToken="w")
    )
    headers, body = case.request(session_id)
    response = client.send(
        client.build_request("POST", server.url, content=body, headers=headers), stream=True
    )
    lines = response.iter_lines()
    for line in lines:
        if "notifications/progress" in line:
            return client, (response, lines)
    raise AssertionError("the call ended before it notified")


def rest_of(stream: tuple[Any, Any]) -> list[Any]:
    """The events left on a response stream, decoded."""
    response, lines = stream
    try:
        return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    finally:
        response.close()


def test_a_cancelled_call_ends_as_the_sdks(servers: tuple[RunningSupervisor, RunningSupervisor]) -> None:
    """``notifications/cancelled`` for a call in flight: the tool is cancelled and the call's stream ends
    with the SDK's -32800, on both."""
    answers = []
    for server in servers:
        session_id = open_session(server)
        marker = Path(tempfile.mkdtemp(prefix="cancel-")) / "cancelled"
        client, stream = call_waiting_for_cancel(server, session_id, marker)
        try:
            cancel = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": 11, "reason": "x"},
            }
            headers = {**HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": VERSION}
            assert httpx.post(server.url, json=cancel, headers=headers, timeout=30).status_code == 202
            answers.append(rest_of(stream))
        finally:
            client.close()
        server.wait_for(marker.exists, "the tool to observe its cancellation", deadline=10)
    assert answers[0] == answers[1] == [{"jsonrpc": "2.0", "id": 11, "error": {"code": -32800, "message": "Request cancelled"}}]  # fmt: skip


def test_deleting_the_session_ends_its_calls_as_the_sdk_does(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    """DELETE while a call runs: the tool is cancelled and the call's stream ends without an answer."""
    answers = []
    for server in servers:
        session_id = open_session(server)
        marker = Path(tempfile.mkdtemp(prefix="delete-")) / "cancelled"
        client, stream = call_waiting_for_cancel(server, session_id, marker)
        try:
            delete_session(server, session_id)
            answers.append(rest_of(stream))
        finally:
            client.close()
        server.wait_for(marker.exists, "the tool to be cancelled with its session", deadline=10)
        headers, body = CASES[0].request(session_id)
        assert httpx.post(server.url, content=body, headers=headers, timeout=30).status_code == 404
    assert answers == [[], []]


def test_a_disconnect_does_not_cancel_a_session_call(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    """As on the SDK's session: a client that hangs up its POST does not cancel the call (only
    ``notifications/cancelled`` does); the session goes on serving."""
    fast, _ = servers
    session_id = open_session(fast)
    marker = Path(tempfile.mkdtemp(prefix="disconnect-")) / "cancelled"
    client, stream = call_waiting_for_cancel(fast, session_id, marker)
    in_flight = lambda: sum(w["in_flight"] for w in fast.status()["workers"])  # noqa: E731
    stream[0].close()
    client.close()
    assert in_flight() == 1
    another = SessionCase("meanwhile", "tools/call", call("echo", {"message": "hé"}), request_id=12)
    status, _, _, last = exchange(fast, session_id, another)
    assert status == 200 and last["result"]["content"] == [{"type": "text", "text": "hé"}]
    assert in_flight() == 1 and not marker.exists()
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 11}}
    headers = {**HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": VERSION}
    httpx.post(fast.url, json=cancel, headers=headers, timeout=30)
    fast.wait_for(marker.exists, "the cancellation to reach the tool", deadline=10)


async def answer_sampling(
    context: Any, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    prompt = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"echo of {prompt!r}"), model="m"
    )


@pytest.mark.anyio
async def test_the_official_client_on_a_session_is_served_by_the_fast_path(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    """The SDK's own client in the handshake era: its calls (a request to the client included, answered
    through the session: ``ctx.sample`` on both runtimes), its listing and its progress reach it from the
    fast path, and the notifications of a tool land on the call that made them."""
    fast, _ = servers
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    before = posts(fast)
    async with Client(fast.url, mode="legacy", sampling_callback=answer_sampling) as client:
        assert {"echo", "it_ask_llm"} <= {tool.name for tool in (await client.list_tools()).tools}
        for tool in ("it_ask_llm", "it_ask_llm_trio"):
            result = await client.call_tool(tool, {"prompt": "hi"})
            assert result.structured_content is not None
            assert result.structured_content["content"]["text"] == "echo of 'hi'"
        notified = await client.call_tool("it_notify", {}, progress_callback=on_progress)
        assert notified.content[0].text == "notified"  # type: ignore[union-attr]
    assert progress == [0.0, 1.5, 3.0]
    assert posts(fast)["fast_path"] - before["fast_path"] == 4
