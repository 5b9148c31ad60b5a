"""Verifying opaque tokens by asking the authorization server (RFC 7662 token introspection).

The token is POSTed with the client credentials (HTTP Basic); it is accepted when the answer says
``active``, its ``exp`` (if any) is in the future, its ``aud`` (if any) names this resource and its
``scope`` holds the required scopes. Answers are cached for ``CACHE_TTL`` seconds (never past the token's
``exp``) under a SHA-256 digest of the token: the token itself is not kept.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Collection
from typing import Any

import httpx

from shared.principal import Principal

from .tokens import (
    InsufficientScope,
    InvalidToken,
    VerifierUnavailable,
    audience_matches,
    principal_of_claims,
)

logger = logging.getLogger("mcp_supervisor.auth")

CACHE_TTL = 30.0
"""Seconds an introspection answer is reused for the same token."""
CACHE_SIZE = 10_000
"""Answers kept at most; the cache is emptied when it is full."""
FETCH_TIMEOUT = 10.0


class IntrospectionVerifier:
    """Verifies tokens with one introspection endpoint for one audience."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        client_id: str,
        client_secret: str,
        audience: str,
        required_scopes: Collection[str] = (),
    ) -> None:
        self._client = client
        self.url = url
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self.audience = audience
        self.required_scopes = frozenset(required_scopes)
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def verify(self, token: str) -> Principal:
        """The token's principal.

        Raises:
            InvalidToken: inactive, expired, for another audience, or the endpoint cannot be reached.
            InsufficientScope: active, without a required scope.
        """
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        cached = self._cache.get(digest)
        if cached is None or cached[0] <= now:
            claims = await self._introspect(token)
            principal = self._check(claims, now)
            exp = claims.get("exp")
            until = now + CACHE_TTL
            if isinstance(exp, (int, float)):
                until = min(until, float(exp))
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[digest] = (until, principal)
        else:
            principal = cached[1]
        missing = self.required_scopes - principal.scopes
        if missing:
            raise InsufficientScope(missing)
        return principal

    def _check(self, claims: dict[str, Any], now: float) -> Principal:
        if claims.get("active") is not True:
            raise InvalidToken("the token is not active")
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and exp <= now:
            raise InvalidToken("the token has expired")
        if "aud" in claims and not audience_matches(claims["aud"], self.audience):
            raise InvalidToken(f"the token is not for {self.audience}")
        return principal_of_claims(claims)

    async def _introspect(self, token: str) -> dict[str, Any]:
        try:
            response = await self._client.post(
                self.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                headers={"Accept": "application/json"},
                timeout=FETCH_TIMEOUT,
            )
            response.raise_for_status()
            claims = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("token introspection at %s failed: %s", self.url, exc)
            raise VerifierUnavailable("the introspection endpoint cannot be reached") from None
        if not isinstance(claims, dict):
            raise InvalidToken("the introspection answer is not an object")
        return claims
