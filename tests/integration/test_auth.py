"""Authorization end to end (issue 16): a real supervisor with ``auth = "jwt"`` against an issuer this test
serves on loopback (``authorization_server.Issuer``: its metadata and JWKS, with keys the test makes).

Every refused token is refused with the right status and ``WWW-Authenticate`` on the fast path, on the
SDK's 2026-07-28 path and on a 2025-11-25 handshake; a valid token works with the SDK client in both eras;
a tool sees its principal (never one the client made up); per-tool scopes hide and refuse; a handshake-era
session answers 404 to another principal, and a principal's sessions are capped; the rate limit answers
429. The SDK's own OAuth flows are in ``test_oauth_client.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from shared.principal import PRINCIPAL_META
from tests.conftest import RunningSupervisor, spawn_supervisor, text
from tests.integration.authorization_server import Issuer

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "auth-test", "version": "1"},
}
RATE = 50
SESSION_CAP = 3
"""``max_sessions_per_principal`` of the module's server (its other tests never hold that many sessions of
one subject)."""


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    served = Issuer()
    yield served
    served.close()


@pytest.fixture(scope="module")
def server(issuer: Issuer) -> Iterator[RunningSupervisor]:
    running = spawn_supervisor(
        "--tools",
        "tests.integration.auth_tools",
        "--no-task-queue",
        "--workers-trio",
        "0",
        "--auth",
        "jwt",
        "--auth-issuer",
        issuer.url,
        "--auth-required-scopes",
        "mcp:use",
        "--rate-limit",
        str(RATE),
        "--max-sessions-per-principal",
        str(SESSION_CAP),
    )
    yield running
    running.stop()


def fast_call(token: str | None, tool: str = "whoami", meta: dict[str, Any] | None = None) -> httpx.Request:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": tool,
    }
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "_meta": meta or META},
    }
    return httpx.Request("POST", "http://placeholder/mcp", headers=headers, json=body)


def sdk_call(token: str | None) -> httpx.Request:
    """A 2026-07-28 call the fast path hands to the SDK (it asks for progress)."""
    return fast_call(token, meta={**META, "progressToken": "p"})


def handshake(token: str | None) -> httpx.Request:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "auth-test", "version": "1"},
        },
    }
    return httpx.Request("POST", "http://placeholder/mcp", headers=headers, json=body)


def send(server: RunningSupervisor, request: httpx.Request) -> httpx.Response:
    with httpx.Client(base_url=server.base, timeout=20) as client:
        request.url = httpx.URL(server.url)
        request.headers["host"] = f"127.0.0.1:{server.port}"
        return client.send(request)


PATHS = {"fast path": fast_call, "sdk 2026-07-28": sdk_call, "2025-11-25 handshake": handshake}

REFUSED = {
    "no token": (lambda i, aud: None, 401, None),
    "expired": (lambda i, aud: i.token(aud, exp=int(time.time()) - 3600), 401, "invalid_token"),
    "not yet valid": (lambda i, aud: i.token(aud, nbf=int(time.time()) + 3600), 401, "invalid_token"),
    "other audience": (lambda i, aud: i.token("http://elsewhere/mcp"), 401, "invalid_token"),
    "other issuer": (lambda i, aud: i.token(aud, iss="http://evil.example"), 401, "invalid_token"),
    "other key": (lambda i, aud: i.token(aud, key=i.stranger), 401, "invalid_token"),
    "unknown kid": (lambda i, aud: i.token(aud, key=i.stranger, kid="nope"), 401, "invalid_token"),
    "alg none": (lambda i, aud: i.none_token(aud), 401, "invalid_token"),
    "hmac with the public key": (lambda i, aud: i.hmac_token(aud), 401, "invalid_token"),
    "garbage": (lambda i, aud: "not.a.jwt", 401, "invalid_token"),
    "missing scope": (lambda i, aud: i.token(aud, scope="other"), 403, "insufficient_scope"),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_tokens(server: RunningSupervisor, issuer: Issuer, case: str, path: str) -> None:
    make, status, error = REFUSED[case]
    response = send(server, PATHS[path](make(issuer, server.url)))
    assert response.status_code == status, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"' in challenge
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge
    if status == 403:
        assert 'scope="mcp:use"' in challenge


@pytest.mark.parametrize("path", list(PATHS))
def test_valid_token_passes_every_path(server: RunningSupervisor, issuer: Issuer, path: str) -> None:
    response = send(server, PATHS[path](issuer.token(server.url, algorithm="ES256", kid="ec")))
    assert response.status_code == 200, response.text


def test_fast_path_serves_authorized_calls(server: RunningSupervisor, issuer: Issuer) -> None:
    before = server.status()["supervisor"]["mcp_posts"]["fast_path"]
    response = send(server, fast_call(issuer.token(server.url, sub="fast-user")))
    assert response.status_code == 200
    assert "fast-user" in response.text
    assert server.status()["supervisor"]["mcp_posts"]["fast_path"] == before + 1


def test_protected_resource_metadata(server: RunningSupervisor, issuer: Issuer) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        document = server.get(path).json()
        assert document["resource"] == server.url
        assert document["authorization_servers"] == [issuer.url]
    assert server.get("/healthz").status_code == 200
    assert server.get("/readyz").status_code == 200


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_sdk_client_sees_its_principal_and_its_tools(
    server: RunningSupervisor, issuer: Issuer, mode: str
) -> None:
    subject = f"alice-{mode}"
    for scope, visible in (("mcp:use", False), ("mcp:use tools:secret", True)):
        token = issuer.token(server.url, sub=subject, scope=scope)
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(server.url, http_client=http), mode=mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "whoami" in names
            assert ("secret" in names) is visible
            result = await client.call_tool("whoami", {}, meta={PRINCIPAL_META: {"subject": "root"}})
            seen = json.loads(text(result))["principal"]
            assert seen == {"subject": subject, "scopes": sorted(scope.split())}
            if visible:
                assert text(await client.call_tool("secret", {})) == "the secret"


def test_a_tool_scope_is_refused_before_the_call(server: RunningSupervisor, issuer: Issuer) -> None:
    token = issuer.token(server.url)
    for request in (fast_call(token, "secret"), fast_call(token, "secret", {**META, "progressToken": 1})):
        response = send(server, request)
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert 'scope="tools:secret"' in response.headers["www-authenticate"]


def test_a_handshake_session_is_not_found_for_another_principal(
    server: RunningSupervisor, issuer: Issuer
) -> None:
    opened = send(server, handshake(issuer.token(server.url, sub="owner")))
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    for subject, status in (("intruder", 404), ("owner", 202)):
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "authorization": f"Bearer {issuer.token(server.url, sub=subject)}",
            "mcp-session-id": session,
            "mcp-protocol-version": "2025-11-25",
        }
        request = httpx.Request(
            "POST",
            server.url,
            headers=headers,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        assert send(server, request).status_code == status
    # issue 15: a call on the session, which the fast path answers, is bound the same way
    before = server.status()["supervisor"]["mcp_posts"]["fast_path"]
    for subject, status in (("intruder", 404), ("owner", 200)):
        headers["authorization"] = f"Bearer {issuer.token(server.url, sub=subject)}"
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}},
        }
        answer = send(server, httpx.Request("POST", server.url, headers=headers, json=call))
        assert answer.status_code == status
    assert '"subject":"owner"' in answer.text
    assert server.status()["supervisor"]["mcp_posts"]["fast_path"] == before + 1


def session_request(token: str, session: str, method: str = "POST") -> httpx.Request:
    """A request on the handshake-era ``session``: a POST of ``notifications/initialized``, or a DELETE."""
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {token}",
        "mcp-session-id": session,
        "mcp-protocol-version": "2025-11-25",
    }
    if method == "DELETE":
        return httpx.Request("DELETE", "http://placeholder/mcp", headers=headers)
    body = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    return httpx.Request("POST", "http://placeholder/mcp", headers=headers, json=body)


async def test_a_principal_past_its_session_cap_is_refused_and_others_are_not(
    server: RunningSupervisor, issuer: Issuer
) -> None:
    """``max_sessions_per_principal``: a principal's sessions past the cap are refused (429, naming the
    setting) while its open sessions keep working, another principal still opens one and calls a tool, and
    a session the principal ends makes room again."""
    greedy = issuer.token(server.url, sub="greedy")
    sessions = []
    for _ in range(SESSION_CAP):
        opened = send(server, handshake(greedy))
        assert opened.status_code == 200, opened.text
        sessions.append(opened.headers["mcp-session-id"])
    refused = send(server, handshake(issuer.token(server.url, sub="greedy")))  # a new token, same subject
    assert refused.status_code == 429, refused.text
    assert "mcp-session-id" not in refused.headers
    message = refused.json()["error"]["message"]
    assert message.startswith("Too many open sessions for this principal: 3 are open")
    assert "max_sessions_per_principal" in message
    assert all(send(server, session_request(greedy, s)).status_code == 202 for s in sessions)

    modest = issuer.token(server.url, sub="modest")
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {modest}"})
    async with http, Client(streamable_http_client(server.url, http_client=http), mode="legacy") as client:
        seen = json.loads(text(await client.call_tool("whoami", {})))["principal"]
        assert seen["subject"] == "modest"

    assert send(server, session_request(greedy, sessions.pop(), "DELETE")).status_code == 200
    reopened = send(server, handshake(greedy))
    assert reopened.status_code == 200, reopened.text
    sessions.append(reopened.headers["mcp-session-id"])
    metrics = server.get("/metrics").text
    assert 'mcp_supervisor_auth_refused_total{reason="session_limited"} 1.0' in metrics
    for session in sessions:
        send(server, session_request(greedy, session, "DELETE"))


async def test_concurrent_sessions_of_one_principal_never_overshoot_its_cap(
    server: RunningSupervisor, issuer: Issuer
) -> None:
    token = issuer.token(server.url, sub="eager")
    request = handshake(token)
    headers = {name: request.headers[name] for name in ("content-type", "accept", "authorization")}
    statuses: list[int] = []
    sessions: list[str] = []
    async with httpx.AsyncClient(timeout=20) as client:

        async def one() -> None:
            response = await client.post(server.url, headers=headers, content=request.content)
            statuses.append(response.status_code)
            if response.status_code == 200:
                sessions.append(response.headers["mcp-session-id"])

        async with anyio.create_task_group() as group:
            for _ in range(4 * SESSION_CAP):
                group.start_soon(one)
    assert sorted(statuses) == [200] * SESSION_CAP + [429] * 3 * SESSION_CAP
    for session in sessions:
        send(server, session_request(token, session, "DELETE"))


async def test_rate_limit_answers_429(server: RunningSupervisor, issuer: Issuer) -> None:
    token = issuer.token(server.url, sub="hasty")
    statuses: list[int] = []
    retry: list[str] = []
    async with httpx.AsyncClient(timeout=20) as client:

        async def one() -> None:
            response = await client.post(
                server.url, headers={"authorization": f"Bearer {token}"}, content=b"{}"
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry.append(response.headers["retry-after"])

        async with anyio.create_task_group() as group:
            for _ in range(4 * RATE):
                group.start_soon(one)
    assert 429 in statuses and any(s != 429 for s in statuses)
    assert all(int(value) >= 1 for value in retry)
    metrics = server.get("/metrics").text
    assert 'mcp_supervisor_auth_refused_total{reason="rate_limited"}' in metrics


async def test_a_task_belongs_to_the_principal_that_made_it(issuer: Issuer) -> None:
    """A task's runs see the principal that created it; to another principal the task does not exist."""
    from tests.tasks_client import TasksExtension, cancel_task, get_task, start_task_call, wait_for_task

    server = spawn_supervisor(
        "--tools", "tests.integration.auth_tools", "--workers-trio", "0", "--auth", "jwt",
        "--auth-issuer", issuer.url, "--auth-required-scopes", "mcp:use",
    )  # fmt: skip
    try:

        def client_of(subject: str) -> tuple[httpx2.AsyncClient, Client]:
            token = issuer.token(server.url, sub=subject)
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            transport = streamable_http_client(server.url, http_client=http)
            return http, Client(transport, mode=MODERN, extensions=[TasksExtension()])

        alice_http, alice = client_of("alice")
        bob_http, bob = client_of("bob")
        async with alice_http, alice, bob_http, bob:
            task_id = (await start_task_call(alice, "whoami_task"))["taskId"]
            done = await wait_for_task(alice.session, task_id)
            seen = json.loads(done["result"]["content"][0]["text"])["principal"]
            assert seen == {"subject": "alice", "scopes": ["mcp:use"]}
            for ask in (get_task, cancel_task):
                with pytest.raises(MCPError) as unknown:
                    await ask(bob.session, task_id)
                assert unknown.value.error.code == -32602
                assert unknown.value.error.message == f"unknown task '{task_id}'"
            assert (await get_task(alice.session, task_id))["status"] == "completed"
    finally:
        server.stop()


def read_call(token: str, uri: str) -> httpx.Request:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "resources/read",
        "mcp-name": uri,
        "authorization": f"Bearer {token}",
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": uri, "_meta": META}}
    return httpx.Request("POST", "http://placeholder/mcp", headers=headers, json=body)


def test_a_resource_read_through_a_template_needs_the_template_s_scope(
    server: RunningSupervisor, issuer: Issuer
) -> None:
    refused = send(server, read_call(issuer.token(server.url), "secret://plans"))
    assert refused.status_code == 403
    assert 'scope="tools:secret"' in refused.headers["www-authenticate"]
    allowed = send(
        server, read_call(issuer.token(server.url, scope="mcp:use tools:secret"), "secret://plans")
    )
    assert allowed.status_code == 200, allowed.text
    assert "the note plans" in allowed.text
