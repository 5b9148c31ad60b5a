"""The fast path answers exactly what the SDK answers.

Two real supervisors serve the same tools, one with the fast path (the default) and one with
``fast_path = false`` (the SDK serves everything). Every request below is sent to both over HTTP and the
answers — status, content type and JSON body — must be equal. The fast-path supervisor's ``/status``
then shows that it answered the requests it should have (so this test fails if the fast path never
engages) and handed the others to the SDK.
"""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import RunningSupervisor, spawn_supervisor

VERSION = "2026-07-28"
TOOLS = "tests.integration.call_tools"
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "fastpath-test", "version": "1"},
}
SAMPLING_META = {**META, "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}


@dataclass
class Case:
    name: str
    method: str
    params: dict[str, Any] | None = None
    fast: bool = True
    """Whether the fast path answers it (else it is handed to the SDK)."""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    """A raw body instead of the JSON-RPC request built from ``method`` and ``params``."""
    request_id: int | str = 7

    def request(self) -> tuple[dict[str, str], bytes]:
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": VERSION,
            "mcp-method": self.method,
        }
        params = self.params if self.params is not None else {}
        if self.method == "tools/call" and isinstance(params.get("name"), str):
            headers["mcp-name"] = params["name"]
        headers.update(self.headers)
        headers = {key: value for key, value in headers.items() if value}
        body = self.body
        if body is None:
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": self.request_id,
                    "method": self.method,
                    "params": {"_meta": META, **params},
                }
            ).encode()
        return headers, body


def call(name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return "tools/call", params


CASES = [
    Case("list", "tools/list"),
    Case("text result", *call("echo", {"message": "hi"})),
    Case("string id", *call("echo", {"message": "hi"}), request_id="abc"),
    Case("arguments omitted", *call("it_too_slow")),
    Case("structured result", *call("it_point", {"x": 1, "y": 2})),
    Case("trio worker", *call("it_add", {"a": 2, "b": 3})),
    Case("tool raises", *call("it_fail", {"message": "boom"})),
    Case("tool deadline", *call("it_too_slow", {})),
    Case("invalid output", *call("it_bad_output", {})),
    Case("unknown tool", *call("no_such_tool", {})),
    Case("invalid arguments", *call("it_point", {"x": "one", "y": 2})),
    Case("missing argument", *call("it_point", {"x": 1})),
    Case("sampling refused: no capability", *call("it_request_refused", {})),
    Case("sampling needed, capability not declared", *call("it_ask_llm", {"prompt": "hi"})),
    Case(
        "sampling: an input_required round",
        "tools/call",
        {"name": "it_ask_llm", "arguments": {"prompt": "hi"}, "_meta": SAMPLING_META},
    ),
    # handed to the SDK: it decides the answer
    Case("Mcp-Name mismatch", *call("echo", {"message": "hi"}), fast=False, headers={"mcp-name": "other"}),
    Case(
        "Mcp-Method mismatch",
        *call("echo", {"message": "hi"}),
        fast=False,
        headers={"mcp-method": "tools/list"},
    ),
    Case(
        "no Accept for SSE",
        *call("echo", {"message": "hi"}),
        fast=False,
        headers={"accept": "application/json"},
    ),
    Case(
        "foreign Origin",
        *call("echo", {"message": "hi"}),
        fast=False,
        headers={"origin": "http://evil.example"},
    ),
    Case(
        "wrong Content-Type",
        *call("echo", {"message": "hi"}),
        fast=False,
        headers={"content-type": "text/plain"},
    ),
    Case("bad JSON", "tools/call", fast=False, body=b'{"jsonrpc": "2.0", "id": 1,'),
    Case("batch", "tools/call", fast=False, body=b"[]"),
    Case(
        "notification",
        "tools/call",
        fast=False,
        body=json.dumps({"jsonrpc": "2.0", "method": "tools/call", "params": {"_meta": META}}).encode(),
    ),
    Case(
        "missing envelope",
        "tools/call",
        fast=False,
        body=json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}}
        ).encode(),
        headers={"mcp-name": "echo"},
    ),
    Case(
        "arguments not an object",
        "tools/call",
        {"name": "echo", "arguments": [1, 2]},
        fast=False,
    ),
    Case("list with cursor", "tools/list", {"cursor": "x"}, fast=False),
]


def streamed(
    name: str, tool: str, arguments: dict[str, Any] | None = None, fast: bool = True, **meta: Any
) -> Case:
    """A ``tools/call`` of ``tool`` whose ``_meta`` also carries ``meta`` (a progress token, a log level)."""
    params = {"name": tool, "arguments": arguments or {}, "_meta": {**META, **meta}}
    return Case(name, "tools/call", params, fast=fast)


TOKEN = {"progressToken": "p-1"}
LEVEL = "io.modelcontextprotocol/logLevel"
STREAM_CASES = [
    # issue 15: progress and log messages on the response's event stream, as the SDK sends them
    streamed("progress and logs from info", "it_notify", **TOKEN, **{LEVEL: "info"}),
    streamed("progress and every log, Trio worker", "it_notify_trio", progressToken=7, **{LEVEL: "debug"}),
    streamed("progress only", "it_notify", progressToken=0),
    streamed("logs from warning only", "it_notify_trio", **{LEVEL: "warning"}),
    streamed("no level passes: JSON", "it_notify", **{LEVEL: "emergency"}),
    streamed("neither asked: JSON", "it_notify"),
    streamed("nothing notified: JSON", "echo", {"message": "hi"}, **TOKEN, **{LEVEL: "debug"}),
    streamed("the existing log tool", "it_log", **{LEVEL: "info"}),
    streamed("notified, then the deadline", "it_notify_then_too_slow", **TOKEN, **{LEVEL: "info"}),
    streamed("tool raises", "it_fail", {"message": "boom"}, **TOKEN, **{LEVEL: "info"}),
    streamed("unknown tool", "no_such_tool", **TOKEN, **{LEVEL: "info"}),
    # a listing never notifies: JSON, as fastmcp's client asks for it (a log level in every request)
    Case("list with a progress token", "tools/list", {"_meta": {**META, **TOKEN}}),
    Case("list with a log level", "tools/list", {"_meta": {**META, LEVEL: "debug"}}),
    # handed to the SDK: it decides the answer
    streamed("progress token true", "it_notify", fast=False, progressToken=True),
    streamed("progress token a float", "it_notify", fast=False, progressToken=1.5),
    streamed("progress token null", "it_notify", fast=False, progressToken=None),
    streamed("unknown log level", "it_notify", fast=False, **{LEVEL: "loud"}),
    Case("list with an unknown log level", "tools/list", {"_meta": {**META, LEVEL: "loud"}}, fast=False),
]


@contextlib.contextmanager
def fast_and_sdk(*args: str) -> Iterator[tuple[RunningSupervisor, RunningSupervisor]]:
    """Two supervisors started with ``args`` (at once: the second need not wait for the first to be
    ready): one with the fast path, one with ``fast_path = false``."""
    fast = spawn_supervisor(*args, wait=False)
    try:
        sdk = spawn_supervisor(*args, env={"MCP_SUPERVISOR_FAST_PATH": "false"}, wait=False)
        try:
            fast.wait_ready()
            sdk.wait_ready()
            yield fast, sdk
        finally:
            sdk.stop()
    finally:
        fast.stop()


def assert_same_answers(fast: RunningSupervisor, sdk: RunningSupervisor, cases: list[Case]) -> None:
    """Every case gets the same answer from both, and the fast-path supervisor answered exactly the
    cases marked ``fast`` itself (so the comparison fails if the fast path never engages)."""
    before = posts(fast)
    for case in cases:
        assert answer(fast, case) == answer(sdk, case), case.name
    after = posts(fast)
    assert after["fast_path"] - before["fast_path"] == sum(case.fast for case in cases)
    assert after["sdk"] - before["sdk"] == sum(not case.fast for case in cases)
    assert posts(sdk)["fast_path"] == 0


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RunningSupervisor, RunningSupervisor]]:
    with fast_and_sdk("--tools", TOOLS, "--no-task-queue") as pair:
        yield pair


def answer(server: RunningSupervisor, case: Case) -> tuple[int, str, Any]:
    headers, body = case.request()
    response = httpx.post(server.url, content=body, headers=headers, timeout=30)
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        return response.status_code, content_type, [json.loads(item) for item in data]
    try:
        decoded = response.json() if response.content else None
    except json.JSONDecodeError:
        return response.status_code, content_type, response.text
    result = decoded.get("result") if isinstance(decoded, dict) else None
    if isinstance(result, dict) and "requestState" in result:  # sealed with a fresh nonce each time
        result["requestState"] = "<sealed>"
    return response.status_code, content_type, decoded


def exchange(server: RunningSupervisor, case: Case) -> tuple[int, dict[str, str], list[bytes], Any]:
    """The status, the headers but ``date``, every event before the answer exactly as sent, and the
    answer (the JSON body or the last event) decoded."""
    headers, body = case.request()
    response = httpx.post(server.url, content=body, headers=headers, timeout=30)
    kept = {name: value for name, value in response.headers.items() if name != "date"}
    if not kept.get("content-type", "").startswith("text/event-stream"):
        return response.status_code, kept, [], response.json() if response.content else None
    *events, last, end = response.content.split(b"\r\n\r\n")
    assert end == b"" and last.startswith(b"event: message\r\ndata: "), response.content
    return response.status_code, kept, events, json.loads(last.split(b"data: ", 1)[1])


def posts(server: RunningSupervisor) -> dict[str, int]:
    return server.status()["supervisor"]["mcp_posts"]  # type: ignore[no-any-return]


def test_every_answer_is_the_sdks(servers: tuple[RunningSupervisor, RunningSupervisor]) -> None:
    assert_same_answers(*servers, CASES)


def test_progress_and_log_messages_are_the_sdks_byte_for_byte(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    """Issue 15: a call asking for progress and log messages gets the SDK's answer: the same status and
    headers, the same notification events byte for byte and in the same order (the SDK sets no event
    ids), JSON when nothing was notified. Only the answer itself is compared decoded, as every fast-path
    answer is: its result's keys come in the worker's order, the SDK's in its models' order."""
    fast, sdk = servers
    before = posts(fast)
    for case in STREAM_CASES:
        assert exchange(fast, case) == exchange(sdk, case), case.name
    after = posts(fast)
    assert after["fast_path"] - before["fast_path"] == sum(case.fast for case in STREAM_CASES)
    assert after["sdk"] - before["sdk"] == sum(not case.fast for case in STREAM_CASES)


def test_notifications_arrive_in_order_before_the_result(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    """What the comparison above holds the SDK to as well: the interleaving the tool made, filtered by
    the requested level, the token echoed, the result last."""
    fast, _ = servers
    status, content_type, events = answer(fast, STREAM_CASES[0])
    assert (status, content_type) == (200, "text/event-stream")
    assert [(event.get("method"), event.get("params")) for event in events[:-1]] == [
        (
            "notifications/progress",
            {"progressToken": "p-1", "progress": 0.0, "total": 3.0, "message": "starting"},
        ),
        ("notifications/message", {"level": "info", "data": {"step": 1, "none": None, "text": "naïve ✓"}}),
        ("notifications/progress", {"progressToken": "p-1", "progress": 1.5}),
        ("notifications/message", {"level": "warning", "logger": "it"}),
        ("notifications/message", {"level": "error", "data": [1, 2.5, True]}),
        ("notifications/progress", {"progressToken": "p-1", "progress": 3.0, "total": 3.0}),
    ]
    assert events[-1]["id"] == 7 and events[-1]["result"]["content"] == [{"type": "text", "text": "notified"}]


def test_the_answers_are_what_the_spec_asks(servers: tuple[RunningSupervisor, RunningSupervisor]) -> None:
    fast, _ = servers
    status, content_type, body = answer(fast, CASES[1])
    assert (status, content_type) == (200, "application/json")
    assert body["id"] == 7
    result = body["result"]
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-supervisor"
    assert result["content"] == [{"type": "text", "text": "hi"}]
    status, _, body = answer(fast, next(case for case in CASES if case.name == "unknown tool"))
    assert status == 400 and body["error"]["code"] == -32602 and "no_such_tool" in body["error"]["message"]


def test_the_listing_shows_both_runtimes_without_router_fields(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    fast, _ = servers
    _, _, listed = answer(fast, CASES[0])
    names = {tool["name"] for tool in listed["result"]["tools"]}
    assert {"echo", "it_point", "it_add"} <= names
    assert all("metadata" not in tool for tool in listed["result"]["tools"])


def test_whitespace_around_a_header_value_is_not_part_of_it(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    """RFC 9110 §5.5 (and the 2026-07-28 header-validation scenario): the SDK compares the raw value and
    refused the call (-32020) with the fast path off; both paths now take the value without it."""
    case = Case("padded Mcp-Name", *call("echo", {"message": "hi"}), headers={"mcp-name": "  echo\t"})
    for server in servers:
        status, body = raw_post(server, case)  # httpx refuses to send such a header; http.client does not
        assert status == 200 and body["result"]["content"] == [{"type": "text", "text": "hi"}]


def raw_post(server: RunningSupervisor, case: Case) -> tuple[int, Any]:
    headers, body = case.request()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", "/mcp", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_capability_the_tool_needs_and_the_client_lacks_fails_the_call_with_32021(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    """2026-07-28: a tool that lets the refusal of ``ctx.sample`` go fails the whole request with
    MissingRequiredClientCapabilityError, HTTP 400; a tool that handles it goes on (it_request_refused)."""
    fast, _ = servers
    status, _, body = answer(fast, Case("needs sampling", *call("it_ask_llm", {"prompt": "hi"})))
    assert status == 400
    assert body["error"]["code"] == -32021
    assert "the client does not support sampling" in body["error"]["message"]
    status, _, body = answer(fast, Case("handles the refusal", *call("it_request_refused", {})))
    assert status == 200 and body["result"]["isError"] is False
