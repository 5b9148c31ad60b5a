"""What ``sdk_sessions`` relies on in the SDK's session manager, pinned against the real SDK (in process:
its ``StreamableHTTPSessionManager`` and low-level ``Server``, driven over ASGI by httpx).

If an SDK upgrade moves any of it — the session table, the owner binding, the idle countdown, the routing
of a request's messages, the connection's exit — one of these fails before the fast path answers a
session wrongly.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import JSONRPCRequest
from starlette.types import Receive, Scope, Send

from supervisor.sdk_sessions import Session, SessionTable

pytestmark = pytest.mark.anyio

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def user_of(subject: str) -> AuthenticatedUser:
    return AuthenticatedUser(AccessToken(token="t", client_id="c", scopes=[], subject=subject))


@asynccontextmanager
async def running(
    **options: Any,
) -> AsyncIterator[tuple[SessionTable, StreamableHTTPSessionManager, httpx.AsyncClient]]:
    """A manager serving a bare server, the table over it, and a client; an ``x-user`` header becomes the
    request's authenticated user (as the supervisor's auth middleware sets ``scope["user"]``)."""
    server: Server[Any] = Server("pin")
    manager = StreamableHTTPSessionManager(app=server, **options)
    table = SessionTable(manager, server)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        user = dict(scope["headers"]).get(b"x-user")
        if user is not None:
            scope["user"] = user_of(user.decode())
        await manager.handle_request(scope, receive, send)

    async with manager.run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield table, manager, client


async def open_session(client: httpx.AsyncClient, version: str = "2025-11-25", **headers: str) -> str:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "pin", "version": "1"}}
    opened = await client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
        headers={**HEADERS, **headers},
    )
    assert opened.status_code == 200, opened.text
    return opened.headers["mcp-session-id"]  # type: ignore[no-any-return]


def on(session_id: str, version: str = "2025-11-25", **headers: str) -> dict[str, str]:
    return {**HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": version, **headers}


async def test_a_session_the_sdk_opened_is_found_with_its_negotiated_version() -> None:
    async with running() as (table, _, client):
        session_id = await open_session(client, "2025-06-18")
        session = table.find(session_id, None)
        assert session is not None and session.id == session_id
        assert session.version == "2025-06-18" and session.accepts_requests
        assert table.find("0" * 32, None) is None


async def test_a_deleted_session_is_gone_at_once_and_ends_its_requests() -> None:
    async with running() as (table, _, client):
        session_id = await open_session(client)
        session = table.find(session_id, None)
        assert session is not None
        ended: list[bool] = []
        session.track(7, ended.append)
        assert (await client.delete("/mcp", headers=on(session_id))).status_code == 200
        assert table.find(session_id, None) is None
        with anyio.fail_after(5):
            while not ended:  # the session's loop ends, then its connection's exit stack
                await anyio.sleep(0.01)
        assert ended == [False] and len(table) == 0


async def test_a_session_is_found_only_for_the_principal_it_is_bound_to() -> None:
    async with running() as (table, _, client):
        session_id = await open_session(client, **{"x-user": "alice"})
        assert table.find(session_id, user_of("alice")) is not None
        assert table.find(session_id, user_of("mallory")) is None
        assert table.find(session_id, None) is None
        answer = await client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers=on(session_id, **{"x-user": "mallory"}),
        )
        assert answer.status_code == 404  # what the SDK answers the other principal, as find says


async def test_holding_a_session_stops_its_idle_countdown_and_releasing_restarts_it() -> None:
    async with running(session_idle_timeout=0.2) as (table, _, client):
        session_id = await open_session(client)
        session = table.find(session_id, None)
        assert session is not None
        scope = session.transport.idle_scope
        assert scope is not None
        session.hold()
        session.hold()
        assert scope.deadline == math.inf
        session.release()
        assert scope.deadline == math.inf  # one request still in flight
        session.release()
        assert scope.deadline <= anyio.current_time() + 0.2
        with anyio.fail_after(5):
            while table.find(session_id, None) is not None:  # the SDK ends it when the countdown runs out
                await anyio.sleep(0.01)


async def test_a_request_to_the_client_rides_the_routed_stream_and_gets_its_answer() -> None:
    async with running() as (table, _, client):
        session_id = await open_session(client)
        session = table.find(session_id, None)
        assert session is not None
        routed = session.route(5)
        asked: asyncio.Task[dict[str, Any]] = asyncio.create_task(session.ask(5, "ping", None, None))
        with anyio.fail_after(5):
            item = await routed.receive()
        request = item.message
        assert isinstance(request, JSONRPCRequest) and request.method == "ping"
        answer = {"jsonrpc": "2.0", "id": request.id, "result": {}}
        assert (await client.post("/mcp", json=answer, headers=on(session_id))).status_code == 202
        with anyio.fail_after(5):
            assert await asked == {}
        session.unroute(5, routed)
        assert "5" not in session.transport._request_streams


async def test_cancelling_names_the_request_as_the_sdk_reads_it() -> None:
    async with running() as (table, _, client):
        session = table.find(await open_session(client), None)
        assert isinstance(session, Session)
        seen: list[bool] = []
        session.track(7, seen.append)
        session.cancel({"requestId": True})
        session.cancel({"requestId": 8})
        assert seen == []
        session.cancel({"requestId": "7"})  # the SDK's dispatcher matches "7" and 7 too
        assert seen == [True]


@pytest.mark.parametrize("options", [{"json_response": True}, {"stateless": True}])
async def test_sessions_answered_otherwise_are_never_offered(options: dict[str, Any]) -> None:
    async with running(**options) as (table, _, client):
        assert not table.serves_sessions
        if not options.get("stateless"):
            session_id = await open_session(client)
            assert table.find(session_id, None) is None
