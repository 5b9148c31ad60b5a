"""The token verifiers, the rate limiter and the middleware on fakes (no network, no processes)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from shared.errors import ConfigError
from shared.principal import PRINCIPAL_META, Principal
from supervisor.auth.caller import call_meta
from supervisor.auth.introspection import IntrospectionVerifier
from supervisor.auth.jwks import JWKSCache, metadata_urls
from supervisor.auth.jwt_verifier import InsufficientScope, JWTVerifier
from supervisor.auth.middleware import AuthMiddleware, AuthStats
from supervisor.auth.ratelimit import RateLimiter
from supervisor.auth.setup import exposure_warning
from supervisor.auth.tokens import InvalidToken, VerifierUnavailable
from supervisor.config_load import load_settings

pytestmark = pytest.mark.anyio
ISSUER = "https://as.example/tenant"
AUDIENCE = "https://mcp.example/mcp"


class FakeIssuer:
    """An issuer behind ``httpx.MockTransport``: metadata, a JWKS with one Ed25519 key, introspection."""

    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.jwk = {**json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key())), "kid": "k1"}
        self.requests: list[str] = []
        self.introspection: dict[str, Any] = {"active": True, "sub": "bob", "scope": "a b"}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if request.url.path == "/.well-known/oauth-authorization-server/tenant":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": "https://as.example/keys"})
        if request.url.path == "/keys":
            return httpx.Response(200, json={"keys": [self.jwk]})
        if request.url.path == "/introspect":
            assert request.headers["authorization"].startswith("Basic ")
            return httpx.Response(200, json=self.introspection)
        return httpx.Response(404)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def token(self, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": now + 60, "scope": "a", **claims}
        return jwt.encode(payload, self.key, algorithm="EdDSA", headers={"kid": kid})


def test_metadata_urls_follow_rfc_8414_then_openid() -> None:
    assert metadata_urls(ISSUER) == [
        "https://as.example/.well-known/oauth-authorization-server/tenant",
        "https://as.example/tenant/.well-known/openid-configuration",
    ]


async def test_jwt_verifier_accepts_a_good_token_and_discovers_the_keys() -> None:
    issuer = FakeIssuer()
    async with issuer.client() as client:
        verifier = JWTVerifier(JWKSCache(ISSUER, None, client), ISSUER, AUDIENCE, ["a"])
        principal = await verifier.verify(issuer.token())
        assert principal == Principal("alice", frozenset({"a"}))
        assert principal.claims["iss"] == ISSUER
        assert "/keys" in issuer.requests


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"aud": "https://other/mcp"},
        {"iss": "https://evil"},
        {"exp": None},
    ],
)
async def test_jwt_verifier_refuses(claims: dict[str, Any]) -> None:
    issuer = FakeIssuer()
    async with issuer.client() as client:
        verifier = JWTVerifier(JWKSCache(ISSUER, None, client), ISSUER, AUDIENCE)
        token = issuer.token(**{k: v for k, v in claims.items() if v is not None})
        if claims == {"exp": None}:
            token = jwt.encode(
                {"iss": ISSUER, "sub": "x", "aud": AUDIENCE}, issuer.key, "EdDSA", {"kid": "k1"}
            )
        with pytest.raises(InvalidToken):
            await verifier.verify(token)


async def test_jwt_verifier_refuses_missing_scopes_and_unknown_keys_without_refetching_each_time() -> None:
    issuer = FakeIssuer()
    async with issuer.client() as client:
        verifier = JWTVerifier(JWKSCache(ISSUER, "https://as.example/keys", client), ISSUER, AUDIENCE, ["z"])
        with pytest.raises(InsufficientScope) as caught:
            await verifier.verify(issuer.token())
        assert caught.value.missing == {"z"}
        for _ in range(3):
            with pytest.raises(InvalidToken):
                await verifier.verify(issuer.token(kid="unknown"))
        assert issuer.requests.count("/keys") == 1  # one fetch; unknown kids wait for REFRESH_INTERVAL


async def test_requests_that_need_the_keys_while_they_are_fetched_wait_for_them() -> None:
    """The first requests after a start all pass, with one fetch: before, only the one that started the
    fetch did, and the others were refused 401 (an integration test with 12 concurrent requests saw 11)."""
    import anyio

    issuer = FakeIssuer()
    release = anyio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return issuer.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
        verifier = JWTVerifier(JWKSCache(ISSUER, "https://as.example/keys", client), ISSUER, AUDIENCE)
        principals: list[Principal] = []

        async def verify() -> None:
            principals.append(await verifier.verify(issuer.token()))

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(verify)
            await anyio.wait_all_tasks_blocked()
            release.set()
    assert len(principals) == 5
    assert issuer.requests.count("/keys") == 1


async def test_introspection_checks_activity_audience_and_caches() -> None:
    issuer = FakeIssuer()
    async with issuer.client() as client:
        verifier = IntrospectionVerifier(client, "https://as.example/introspect", "rs", "secret", AUDIENCE)
        assert (await verifier.verify("opaque")).scopes == {"a", "b"}
        await verifier.verify("opaque")
        assert issuer.requests.count("/introspect") == 1
        issuer.introspection = {"active": False}
        with pytest.raises(InvalidToken):
            await verifier.verify("another")
        issuer.introspection = {"active": True, "sub": "bob", "aud": "https://other"}
        with pytest.raises(InvalidToken):
            await verifier.verify("third")


def test_rate_limiter_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, clock=lambda: now[0])
    assert limiter.acquire("a") == 0 and limiter.acquire("a") == 0
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0  # another principal has its own bucket
    now[0] = 0.5
    assert limiter.acquire("a") == 0


def test_call_meta_drops_what_the_client_claims() -> None:
    forged = {PRINCIPAL_META: {"subject": "root"}, "other": 1}
    assert call_meta(forged, None) == {"other": 1}
    assert call_meta(forged, Principal("alice"))[PRINCIPAL_META]["subject"] == "alice"  # type: ignore[index]


def test_exposure_needs_auth_or_consent() -> None:
    assert exposure_warning(load_settings(overrides={"host": "127.0.0.1"})) is None
    with pytest.raises(ConfigError, match="allow_unauthenticated"):
        exposure_warning(load_settings(overrides={"host": "0.0.0.0"}))
    assert exposure_warning(load_settings(overrides={"host": "0.0.0.0", "allow_unauthenticated": True}))
    with pytest.raises(ConfigError, match="auth = jwt needs auth_issuer"):
        load_settings(overrides={"auth": "jwt"})


class StaticVerifier:
    async def verify(self, token: str) -> Principal:
        if token == "admin":
            return Principal("root", frozenset({"mcp:admin"}))
        if token == "user":
            return Principal("alice", frozenset({"mcp:use"}))
        raise InvalidToken("no")


@pytest.mark.parametrize("path", ["/status", "/metrics", "/ui", "/ui/app.js", "/ui/workflows"])
@pytest.mark.parametrize(
    ("client", "token", "loopback_admin", "status"),
    [
        ("127.0.0.1", None, True, 200),
        ("10.0.0.5", None, True, 401),
        ("127.0.0.1", None, False, 401),
        ("10.0.0.5", "user", True, 403),
        ("10.0.0.5", "admin", True, 200),
    ],
)
async def test_status_metrics_and_the_ui_need_the_admin_scope(
    path: str, client: str, token: str | None, loopback_admin: bool, status: int
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = AuthMiddleware(
        app,
        verifier=StaticVerifier(),
        metadata={},
        metadata_url="https://mcp.example/.well-known/oauth-protected-resource/mcp",
        entry_scopes=lambda method, params: (),
        admin_scope="mcp:admin",
        loopback_admin=loopback_admin,
        limiter=None,
        stats=AuthStats(),
        max_body_size=1024,
    )
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def collect(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "GET", "headers": headers, "client": (client, 1)}
    await middleware(scope, receive, collect)
    assert sent[0]["status"] == status


async def test_an_unreachable_introspection_endpoint_is_unavailable_not_an_invalid_token() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
        verifier = IntrospectionVerifier(client, "https://as.example/introspect", "rs", "secret", AUDIENCE)
        with pytest.raises(VerifierUnavailable):
            await verifier.verify("opaque")


async def test_a_token_that_cannot_be_checked_now_is_503_with_retry_after() -> None:
    class Down:
        async def verify(self, token: str) -> Any:
            raise VerifierUnavailable("the introspection endpoint cannot be reached")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the request must not reach the app")

    stats = AuthStats()
    middleware = AuthMiddleware(
        app,
        verifier=Down(),
        metadata={},
        metadata_url="https://mcp.example/.well-known/oauth-protected-resource/mcp",
        entry_scopes=lambda method, params: (),
        admin_scope="mcp:admin",
        loopback_admin=False,
        limiter=None,
        stats=stats,
        max_body_size=1024,
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def collect(message: Any) -> None:
        sent.append(message)

    headers = [(b"authorization", b"Bearer opaque")]
    scope = {"type": "http", "path": "/mcp", "method": "POST", "headers": headers, "client": ("10.0.0.5", 1)}
    await middleware(scope, receive, collect)
    assert sent[0]["status"] == 503 and (b"retry-after", b"5") in sent[0]["headers"]
    assert stats.unavailable == 1 and stats.unauthorized == 0
