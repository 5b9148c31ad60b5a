"""The MCP SDK client's own OAuth flows against a real supervisor (``auth = "jwt"``) and the test's
authorization server (``authorization_server.Issuer``) on loopback (issue 16).

The client starts with no token and no knowledge of the authorization server: it learns everything from
the supervisor's 401 (``WWW-Authenticate: Bearer resource_metadata=...``) and the protected resource
metadata it points to, then the issuer's RFC 8414 metadata. Authorization code with PKCE (after dynamic
client registration; the test's redirect handler plays the user agent at the authorization endpoint) in
both protocol eras, a scope step-up when a tool needs more (403 ``insufficient_scope``), and the
client-credentials grant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider, OAuthTokenError
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from tests.conftest import RunningSupervisor, spawn_supervisor, text
from tests.integration.authorization_server import Issuer

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

MODERN = "2026-07-28"
REDIRECT_URI = "http://127.0.0.1:9/callback"
"""Never served: the redirect handler reads the code from the authorization endpoint's 302."""


class MemoryStorage:
    """The SDK's ``TokenStorage``, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class UserAgent:
    """The redirect and callback handlers: opens the authorization URL as a browser would (the test's
    user consents at once) and hands the code, state and issuer of its redirect back to the SDK."""

    def __init__(self) -> None:
        self.visited: list[str] = []
        self._answer: AuthorizationCodeResult | None = None

    async def redirect(self, url: str) -> None:
        self.visited.append(url)
        async with httpx2.AsyncClient(follow_redirects=False) as browser:
            response = await browser.get(url)
        assert response.status_code == 302, response.text
        location = urlsplit(response.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
        query = {key: values[0] for key, values in parse_qs(location.query).items()}
        self._answer = AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    async def callback(self) -> AuthorizationCodeResult:
        assert self._answer is not None, "the SDK asked for the callback before any redirect"
        answer, self._answer = self._answer, None
        return answer


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    served = Issuer(user="alice")
    yield served
    served.close()


@pytest.fixture(scope="module")
def server(issuer: Issuer) -> Iterator[RunningSupervisor]:
    running = spawn_supervisor(
        "--tools", "tests.integration.auth_tools", "--no-task-queue", "--workers-trio", "0",
        "--auth", "jwt", "--auth-issuer", issuer.url, "--auth-required-scopes", "mcp:use",
    )  # fmt: skip
    yield running
    running.stop()


def principal_of(result: object) -> dict[str, object]:
    seen: dict[str, object] = json.loads(text(result))["principal"]
    return seen


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_authorization_code_with_pkce_discovered_from_the_401(
    server: RunningSupervisor, issuer: Issuer, mode: str
) -> None:
    agent = UserAgent()
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=server.url,
        client_metadata=OAuthClientMetadata(
            client_name="oauth-flow-test",
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code"],
            token_endpoint_auth_method="client_secret_post",
        ),
        storage=storage,
        redirect_handler=agent.redirect,
        callback_handler=agent.callback,
    )
    seen_by_client: list[str] = []

    async def record(response: httpx2.Response) -> None:
        seen_by_client.append(f"{response.status_code} {response.request.method} {response.request.url}")

    start = len(issuer.log)
    http = httpx2.AsyncClient(auth=provider, event_hooks={"response": [record]})
    async with http, Client(streamable_http_client(server.url, http_client=http), mode=mode) as client:
        assert principal_of(await client.call_tool("whoami", {})) == {
            "subject": "alice",
            "scopes": ["mcp:use"],
        }
        # a tool that needs more: 403 insufficient_scope, the SDK steps up and asks for both scopes
        assert text(await client.call_tool("secret", {})) == "the secret"
        assert principal_of(await client.call_tool("whoami", {}))["scopes"] == ["mcp:use", "tools:secret"]

    # discovery started from the supervisor's 401 and its protected resource metadata
    first = next(i for i, line in enumerate(seen_by_client) if line.startswith("401 POST "))
    assert seen_by_client[first + 1] == (f"200 GET {server.base}/.well-known/oauth-protected-resource/mcp"), (
        seen_by_client
    )
    assert any(line.startswith(f"403 POST {server.url}") for line in seen_by_client)
    # then the issuer: metadata, registration, two authorizations (the second one the step-up), tokens
    flow = [line for line in issuer.log[start:] if line != "GET /jwks"]
    assert flow[0] == "GET /.well-known/oauth-authorization-server", flow
    assert [line for line in flow if "/.well-known/" not in line] == [
        "POST /register",
        "GET /authorize",
        "POST /token",
        "GET /authorize",
        "POST /token",
    ], flow
    first_scope, step_up_scope = (parse_qs(urlsplit(url).query)["scope"][0] for url in agent.visited)
    assert first_scope == "mcp:use"  # the 401 names the scopes needed, so the client asks for no more
    assert set(step_up_scope.split()) == {"mcp:use", "tools:secret"}
    assert all(parse_qs(urlsplit(url).query)["resource"] == [server.url] for url in agent.visited)
    assert issuer.issued[-1]["aud"] == server.url
    assert storage.client is not None and storage.client.client_secret is not None


async def test_client_credentials(server: RunningSupervisor, issuer: Issuer) -> None:
    issuer.add_client("batch-job", "s3cret")
    provider = ClientCredentialsOAuthProvider(
        server_url=server.url,
        storage=MemoryStorage(),
        client_id="batch-job",
        client_secret="s3cret",
        scope="mcp:use",
        issuer=issuer.url,
    )
    http = httpx2.AsyncClient(auth=provider)
    async with http, Client(streamable_http_client(server.url, http_client=http), mode=MODERN) as client:
        seen = principal_of(await client.call_tool("whoami", {}))
    assert seen == {"subject": "batch-job", "scopes": ["mcp:use"]}
    assert issuer.issued[-1]["aud"] == server.url


async def test_a_client_with_the_wrong_secret_gets_no_token_and_no_tool(
    server: RunningSupervisor, issuer: Issuer
) -> None:
    issuer.add_client("intruder", "right")
    provider = ClientCredentialsOAuthProvider(
        server_url=server.url,
        storage=MemoryStorage(),
        client_id="intruder",
        client_secret="wrong",
        scope="mcp:use",
        issuer=issuer.url,
    )
    http = httpx2.AsyncClient(auth=provider)
    with pytest.raises(ExceptionGroup) as refused:
        async with http, Client(streamable_http_client(server.url, http_client=http), mode=MODERN) as client:
            await client.call_tool("whoami", {})
    failure = refused.value
    while isinstance(failure, BaseExceptionGroup):
        failure = failure.exceptions[0]
    assert isinstance(failure, OAuthTokenError)
    assert '"invalid_client"' in str(failure)
    assert not any(claims["sub"] == "intruder" for claims in issuer.issued)
