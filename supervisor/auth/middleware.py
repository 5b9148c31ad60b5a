"""``AuthMiddleware``: the ASGI layer in front of the whole HTTP app, fast path included.

With ``auth`` on, ``/mcp`` needs a bearer token the verifier accepts (401 with ``WWW-Authenticate: Bearer
resource_metadata=...``, ``scope=`` naming the required scopes so that a client following the MCP
specification asks for those and no more, and ``error="invalid_token"`` when a token was given), holding
the required scopes (403 ``insufficient_scope``), and, for a call of an entry that declares scopes, those
too (403 naming them, before the call reaches a worker). ``/healthz`` and ``/readyz`` stay open; ``/status``,
``/metrics``, ``/ui`` and what is under ``/ui/`` need ``auth_admin_scope`` unless ``loopback_admin`` lets
loopback clients in. The RFC 9728 metadata is served at ``WELL_KNOWN`` and ``WELL_KNOWN + "/mcp"``.

The verified principal goes in the ASGI scope (``caller.SCOPE_KEY``; and ``user``/``auth`` as the SDK's
bearer middleware sets them, so the SDK binds handshake-era sessions to it: another principal gets 404)
and in ``caller.current`` while the request is served. With a ``rate_limit``, each principal (each client
address without auth) has a token bucket; past it: 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.principal import Principal

from ..request_body import read_body, replaying
from . import caller
from .challenge import WELL_KNOWN, send_json, www_authenticate
from .ratelimit import RateLimiter, retry_after
from .tokens import InsufficientScope, InvalidToken, Verifier, VerifierUnavailable

logger = logging.getLogger("mcp_supervisor.auth")

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
ADMIN_PATHS = frozenset({"/status", "/metrics", "/ui"})
ADMIN_PREFIX = "/ui/"
"""Every path under it is an admin path too: the ``/ui`` page's files and data."""
METADATA_PATHS = frozenset({WELL_KNOWN, WELL_KNOWN + "/mcp"})

EntryScopes = Callable[[str, dict[str, Any]], Collection[str]]
"""(method, params) → the scopes the entry a request calls declares (empty: none)."""


RETRY_UNAVAILABLE = b"5"
"""Seconds a client is told to wait when its token cannot be checked now."""


@dataclass
class AuthStats:
    """Requests the middleware refused (in /metrics)."""

    unauthorized: int = 0
    """401: no token, or a token refused."""
    forbidden: int = 0
    """403: a scope missing."""
    rate_limited: int = 0
    """429: past the principal's rate limit."""
    unavailable: int = 0
    """503: the token could not be checked (the authorization server cannot be reached)."""
    session_limited: int = 0
    """429: a new handshake-era session past ``max_sessions_per_principal`` (``session_caps``)."""


class AuthMiddleware:
    """ASGI wrapper enforcing authorization in front of ``app`` (see the module docstring).

    ``verifier`` is ``None`` when ``auth = "none"``: then only the rate limit applies.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier | None,
        metadata: dict[str, Any],
        metadata_url: str | None,
        entry_scopes: EntryScopes,
        admin_scope: str,
        loopback_admin: bool,
        limiter: RateLimiter | None,
        stats: AuthStats,
        max_body_size: int,
        required_scopes: Collection[str] = (),
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.metadata = metadata
        self.metadata_url = metadata_url
        self.entry_scopes = entry_scopes
        self.admin_scope = admin_scope
        self.loopback_admin = loopback_admin
        self.limiter = limiter
        self.stats = stats
        self.max_body_size = max_body_size
        self.required_scopes = frozenset(required_scopes)
        """Named in every 401 (``scope=``): a client asks the authorization server for them, no more."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.verifier is None:
            if path == "/mcp" and self.limiter is not None:
                client = scope.get("client")
                if not await self._admit(scope, send, client[0] if client else "?"):
                    return
            await self.app(scope, receive, send)
            return
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
        elif path in METADATA_PATHS:
            await send_json(send, 200, self.metadata, [(b"cache-control", b"max-age=3600")])
        elif path in ADMIN_PATHS or path.startswith(ADMIN_PREFIX):
            if self.loopback_admin and _loopback(scope):
                await self.app(scope, receive, send)
                return
            principal = await self._authenticate(scope, send, (self.admin_scope,))
            if principal is not None:
                await self.app(scope, receive, send)
        else:
            principal = await self._authenticate(scope, send, ())
            if principal is None or not await self._admit(scope, send, principal.subject):
                return
            _install(scope, principal)
            if scope["method"] == "POST" and path == "/mcp":
                replay = await self._check_entry_scopes(scope, receive, send, principal)
                if replay is None:
                    return
                receive = replay
            token = caller.current.set(principal)
            try:
                await self.app(scope, receive, send)
            finally:
                caller.current.reset(token)

    async def _authenticate(self, scope: Scope, send: Send, needed: Collection[str]) -> Principal | None:
        """The request's principal holding ``needed``; else answers 401 or 403 and returns ``None``."""
        assert self.verifier is not None
        token = _bearer(scope)
        wanted = self.required_scopes | frozenset(needed)
        if token is None:
            await self._refuse(scope, send, 401, None, "a bearer token is required", wanted)
            return None
        try:
            principal = await self.verifier.verify(token)
        except InsufficientScope as exc:
            await self._refuse(scope, send, 403, "insufficient_scope", str(exc), exc.missing)
            return None
        except InvalidToken as exc:
            logger.info("token refused: %s", exc)
            await self._refuse(scope, send, 401, "invalid_token", "the token is not valid", wanted)
            return None
        except VerifierUnavailable as exc:
            self.stats.unavailable += 1
            body = {"error": "temporarily_unavailable", "error_description": str(exc)}
            await send_json(send, 503, body, [(b"retry-after", RETRY_UNAVAILABLE)])
            return None
        missing = frozenset(needed) - principal.scopes
        if missing:
            await self._refuse(scope, send, 403, "insufficient_scope", "scope missing", missing)
            return None
        return principal

    async def _check_entry_scopes(
        self, scope: Scope, receive: Receive, send: Send, principal: Principal
    ) -> Receive | None:
        """Refuse (403) a call of an entry whose scopes the principal lacks; else a ``receive`` that
        replays the body read to find out."""
        messages: deque[Message] = deque()
        body = await read_body(receive, messages, self.max_body_size)
        replay = replaying(messages, receive)
        if body is None:
            return replay  # over the limit or cut short: the app answers that
        needed: set[str] = set()
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            return replay
        for request in decoded if isinstance(decoded, list) else [decoded]:
            if isinstance(request, dict) and isinstance(request.get("params"), dict):
                needed.update(self.entry_scopes(str(request.get("method")), request["params"]))
        missing = needed - principal.scopes
        if missing:
            await self._refuse(scope, send, 403, "insufficient_scope", "scope missing", needed)
            return None
        return replay

    async def _admit(self, scope: Scope, send: Send, key: str) -> bool:
        """Take a token from ``key``'s bucket; past the limit, answer 429 and return False."""
        if self.limiter is None:
            return True
        wait = self.limiter.acquire(key)
        if wait <= 0:
            return True
        self.stats.rate_limited += 1
        await send_json(
            send,
            429,
            {"error": "rate_limited", "error_description": "too many requests"},
            [(b"retry-after", retry_after(wait).encode())],
        )
        return False

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        error: str | None,
        description: str,
        needed: Collection[str] = (),
    ) -> None:
        if status == 401:
            self.stats.unauthorized += 1
        else:
            self.stats.forbidden += 1
        challenge = www_authenticate(self._metadata_url(scope), error, needed)
        body = {"error": error or "invalid_request", "error_description": description}
        await send_json(send, status, body, [(b"www-authenticate", challenge.encode())])

    def _metadata_url(self, scope: Scope) -> str:
        if self.metadata_url is not None:
            return self.metadata_url
        host = dict(scope["headers"]).get(b"host", b"localhost").decode("latin-1")
        return f"{scope.get('scheme', 'http')}://{host}{WELL_KNOWN}/mcp"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


def _loopback(scope: Scope) -> bool:
    client = scope.get("client")
    host = client[0] if client else ""
    return host == "::1" or host.startswith("127.")


def _install(scope: Scope, principal: Principal) -> None:
    """The principal in the scope, for our code and the SDK's (``user``/``auth``; no token kept)."""
    scope[caller.SCOPE_KEY] = principal
    client_id = principal.claims.get("client_id") or principal.claims.get("azp") or principal.subject
    access = AccessToken(
        token="",
        client_id=str(client_id),
        scopes=sorted(principal.scopes),
        subject=principal.subject,
        claims={"iss": principal.claims["iss"]} if "iss" in principal.claims else None,
    )
    scope["user"] = AuthenticatedUser(access)
    scope["auth"] = AuthCredentials(sorted(principal.scopes))
