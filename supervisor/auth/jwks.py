"""The issuer's signing keys (a JWKS), fetched over HTTP and cached.

The JWKS URL is ``auth_jwks_url`` or the ``jwks_uri`` of the issuer's metadata (RFC 8414
``/.well-known/oauth-authorization-server``, then OpenID Connect ``/.well-known/openid-configuration``).
Keys are fetched on first use, again after ``MAX_AGE``, and on a token signed with an unknown ``kid`` —
but at most once every ``REFRESH_INTERVAL`` seconds, so a stream of tokens with made-up key ids cannot
turn the server into a load generator against the issuer. A request that needs a key while a fetch is in
flight waits for that fetch and looks again: the first requests after a start (or a key rotation) are
not refused because another request happened to start the fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from .tokens import InvalidToken

logger = logging.getLogger("mcp_supervisor.auth")

REFRESH_INTERVAL = 30.0
"""Least seconds between two fetches of the JWKS."""
MAX_AGE = 3600.0
"""Seconds the keys are used before they are fetched again."""
FETCH_TIMEOUT = 10.0
"""Seconds one request to the issuer may take."""


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be: RFC 8414 (path after the well-known part), then OpenID."""
    parts = urlsplit(issuer.rstrip("/"))
    origin = f"{parts.scheme}://{parts.netloc}"
    return [
        f"{origin}/.well-known/oauth-authorization-server{parts.path}",
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
    ]


class JWKSCache:
    """The signing keys of one issuer, by key id.

    Not thread-safe: used from the supervisor's loop only.
    """

    def __init__(self, issuer: str, jwks_url: str | None, client: httpx.AsyncClient) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self._client = client
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched = -float("inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key ``kid`` names (without a ``kid``: the only key of the set).

        Raises:
            InvalidToken: no such key, even after a refresh; or the issuer cannot be reached.
        """
        if self._stale() or self._lookup(kid) is None:
            async with self._lock:  # a fetch in flight ends before the keys are looked at again
                if self._stale() or (
                    self._lookup(kid) is None and time.monotonic() - self._fetched >= REFRESH_INTERVAL
                ):
                    await self._refresh()
        key = self._lookup(kid)
        if key is None:
            raise InvalidToken(f"no signing key {kid!r} in the issuer's JWKS")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return time.monotonic() - self._fetched > MAX_AGE

    async def _refresh(self) -> None:
        """Fetch the keys (called with the lock held); a failure keeps the keys there were."""
        self._fetched = time.monotonic()  # a failed fetch counts too: the issuer is asked again later
        try:
            url = self.jwks_url or await self._discover()
            document = await self._get_json(url)
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("cannot fetch the signing keys of %s: %s", self.issuer, exc)
            return
        keys: dict[str | None, jwt.PyJWK] = {}
        for data in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                key = jwt.PyJWK(data)
            except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError):
                continue  # a key type or algorithm we do not use
            keys[data.get("kid")] = key
        self._keys = keys
        if self.jwks_url is None:
            self.jwks_url = url

    async def _discover(self) -> str:
        """The ``jwks_uri`` of the issuer's metadata.

        Raises:
            ValueError: no metadata document names the issuer and a JWKS.
        """
        for url in metadata_urls(self.issuer):
            try:
                document = await self._get_json(url)
            except (httpx.HTTPError, ValueError):
                continue
            if (
                isinstance(document, dict)
                and document.get("issuer", "").rstrip("/") == self.issuer.rstrip("/")
                and isinstance(document.get("jwks_uri"), str)
            ):
                return str(document["jwks_uri"])
        raise ValueError("no authorization server metadata with a jwks_uri")

    async def _get_json(self, url: str) -> Any:
        response = await self._client.get(url, timeout=FETCH_TIMEOUT)
        response.raise_for_status()
        return response.json()
