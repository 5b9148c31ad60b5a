"""Issue 16, "a front no client can choke", over real loopback sockets: header and body deadlines, idle
connections that cannot lock a request out, the handshake-era session cap and idle timeout, Host and
Origin checks on every endpoint, and lone surrogates answered as parse errors."""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningSupervisor, spawn_supervisor

TOOLS = "tests.integration.call_tools"
VERSION = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "front-guard-test", "version": "1"},
}
MODERN_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": VERSION,
    "mcp-method": "tools/call",
    "mcp-name": "echo",
}
CLOSE_DEADLINE = 15.0
"""Longest a test waits for the server to close a connection it should close after about a second."""


def echo_body(message: str = "hi") -> bytes:
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": message}, "_meta": META},
    }
    return json.dumps(request).encode()


def echo(server: RunningSupervisor, client: httpx.Client | None = None) -> httpx.Response:
    post = client.post if client is not None else httpx.post
    return post(server.url, content=echo_body(), headers=MODERN_HEADERS, timeout=30)


def closed_by_server(sock: socket.socket, trickle: bytes = b"") -> float:
    """Seconds until the server closes ``sock``, sending one byte of ``trickle`` every 0.1 s meanwhile;
    fails the test after ``CLOSE_DEADLINE``."""
    started = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - started < CLOSE_DEADLINE:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            if trickle:
                sock.sendall(trickle[:1])
                trickle = trickle[1:]
            continue
        except ConnectionResetError:
            return time.monotonic() - started
        if not data:
            return time.monotonic() - started
    pytest.fail(f"the server kept the connection open for {CLOSE_DEADLINE} s")


@pytest.fixture(scope="module")
def quick() -> Iterator[RunningSupervisor]:
    """Deadlines of half a second."""
    running = spawn_supervisor(
        "--tools", TOOLS, "--no-task-queue", "--header-timeout", "0.5", "--body-timeout", "0.5"
    )
    yield running
    assert running.stop() == 0


def connect(server: RunningSupervisor) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(quick: RunningSupervisor) -> None:
    with connect(quick) as sock:
        assert closed_by_server(sock) >= 0.4


def test_headers_that_trickle_in_are_cut_at_the_header_timeout(quick: RunningSupervisor) -> None:
    # 600 bytes at ten a second would take a minute: the deadline is not moved by each byte
    headers = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 600 + b"\r\n\r\n"
    with connect(quick) as sock:
        assert closed_by_server(sock, trickle=headers) < CLOSE_DEADLINE


def test_a_body_that_does_not_arrive_is_cut_at_the_body_timeout(quick: RunningSupervisor) -> None:
    body = echo_body()
    head = "".join(f"{name}: {value}\r\n" for name, value in MODERN_HEADERS.items())
    request = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}content-length: {len(body)}\r\n\r\n"
    with connect(quick) as sock:
        sock.sendall(request.encode() + body[:10])
        closed_by_server(sock)


def test_healthy_keep_alive_requests_are_not_cut(quick: RunningSupervisor) -> None:
    with httpx.Client() as client:
        for _ in range(3):
            response = echo(quick, client)
            assert response.status_code == 200 and response.json()["result"]["content"][0]["text"] == "hi"


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for a thousand sockets in the test process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    "per_client", ["100", "1000000"], ids=["the address cap evicts", "the total cap evicts"]
)
def test_a_thousand_silent_connections_do_not_lock_out_a_tools_call(
    supervisor_factory: Any, many_files: None, per_client: str
) -> None:
    # a header deadline far longer than the test: only how connections are counted can let the call in
    server = supervisor_factory(
        "--tools", TOOLS, "--no-task-queue", "--header-timeout", "600",
        "--max-connections", "1000", "--max-connections-per-client", per_client,
    )  # fmt: skip
    silent: list[socket.socket] = []
    try:
        for _ in range(1000):
            silent.append(connect(server))
        response = echo(server)
        assert response.status_code == 200, response.text
        assert response.json()["result"]["content"][0]["text"] == "hi"
        assert server.get("/healthz").status_code == 200
    finally:
        for sock in silent:
            sock.close()


def initialize(server: RunningSupervisor) -> httpx.Response:
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "front-guard-test", "version": "1"},
        },
    }
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    return httpx.post(server.url, json=request, headers=headers, timeout=30)


def test_sessions_over_max_sessions_get_503_and_idle_ones_are_closed(supervisor_factory: Any) -> None:
    server = supervisor_factory(
        "--tools", TOOLS, "--no-task-queue", "--max-sessions", "2", "--session-idle-timeout", "1"
    )
    opened = [initialize(server) for _ in range(2)]
    assert all(response.status_code == 200 for response in opened)
    over = initialize(server)
    assert over.status_code == 503
    assert over.json()["error"]["message"] == "Too many open sessions"
    server.wait_for(lambda: initialize(server).status_code == 200, "an idle session to be closed")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-session-id": opened[0].headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    assert httpx.post(server.url, json=ping, headers=headers, timeout=30).status_code == 404
