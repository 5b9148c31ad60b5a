"""Building the authorization layer from the settings, and the start-time exposure check."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from shared.errors import ConfigError

from ..config import Settings
from ..router import Router
from .challenge import WELL_KNOWN, resource_metadata
from .middleware import AuthMiddleware, AuthStats, EntryScopes
from .ratelimit import RateLimiter
from .tokens import Verifier

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("mcp_supervisor.auth")

UNAUTHENTICATED_WARNING = (
    "serving a non-loopback address without authorization (auth = none, allow_unauthenticated = true): "
    "anyone who can reach it may call every tool"
)


def exposure_warning(settings: Settings) -> str | None:
    """The warning to give at start and in /status, if the settings serve everyone.

    Raises:
        ConfigError: a non-loopback address with ``auth = "none"`` and no ``allow_unauthenticated``.
    """
    if settings.auth != "none" or settings.loopback_bound:
        return None
    if not settings.allow_unauthenticated:
        raise ConfigError(
            f"host = {settings.host!r} is not a loopback address and auth = none: set auth (jwt or "
            "introspection), or allow_unauthenticated = true to serve it to everyone"
        )
    return UNAUTHENTICATED_WARNING


def build_verifier(settings: Settings, client: httpx.AsyncClient) -> Verifier | None:
    """The token verifier ``settings.auth`` names; ``None`` for ``"none"``. Its modules (PyJWT, httpx)
    are imported here: a supervisor without authorization never loads them."""
    from .introspection import IntrospectionVerifier
    from .jwks import JWKSCache
    from .jwt_verifier import JWTVerifier

    if settings.auth == "jwt":
        assert settings.auth_issuer is not None  # Settings refuses jwt without an issuer
        keys = JWKSCache(settings.auth_issuer, settings.auth_jwks_url, client)
        return JWTVerifier(keys, settings.auth_issuer, settings.audience, settings.auth_required_scopes)
    if settings.auth == "introspection":
        assert settings.auth_introspection_url and settings.auth_client_id and settings.auth_client_secret
        return IntrospectionVerifier(
            client,
            settings.auth_introspection_url,
            settings.auth_client_id,
            settings.auth_client_secret,
            settings.audience,
            settings.auth_required_scopes,
        )
    return None


def entry_scopes(router: Router) -> EntryScopes:
    """The scopes the entry a request calls declares: a tool (``tools/call``), a prompt
    (``prompts/get``) or a resource (``resources/read``: the listed URI, else the first template that
    matches it, as the front picks the entry that serves the read)."""
    parsed: dict[int, list[tuple[Any, dict[str, Any]]]] = {}

    def templates() -> list[tuple[Any, dict[str, Any]]]:
        from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

        version = router.catalog.version
        if version not in parsed:
            found = []
            for entry in router.catalog.of_kind("resource_template"):
                try:
                    found.append((UriTemplate.parse(entry["key"]), entry))
                except InvalidUriTemplate:  # the front cannot serve it either
                    continue
            parsed.clear()
            parsed[version] = found
        return parsed[version]

    def scopes(method: str, params: dict[str, Any]) -> Collection[str]:
        entry = None
        if method == "tools/call" and isinstance(params.get("name"), str):
            entry = router.tool(params["name"])
        elif method == "prompts/get" and isinstance(params.get("name"), str):
            entry = router.catalog.entry("prompt", params["name"])
        elif method == "resources/read" and isinstance(params.get("uri"), str):
            entry = router.catalog.entry("resource", params["uri"])
            if entry is None:
                entry = next((e for t, e in templates() if t.match(params["uri"]) is not None), None)
        if entry is None:
            return ()
        found: Collection[str] = entry["metadata"].get("scopes") or ()
        return found

    return scopes


def protect(app: ASGIApp, router: Router, settings: Settings, stats: AuthStats) -> ASGIApp:
    """``app`` behind ``AuthMiddleware`` when the settings ask for authorization or a rate limit."""
    limiter = RateLimiter(settings.rate_limit) if settings.rate_limit > 0 else None
    if settings.auth == "none" and limiter is None:
        return app
    import httpx

    verifier = build_verifier(settings, httpx.AsyncClient(follow_redirects=False))
    servers = settings.auth_authorization_servers or ((settings.auth_issuer,) if settings.auth_issuer else ())
    metadata = resource_metadata(
        settings.audience, servers, {*settings.auth_required_scopes, settings.auth_admin_scope}
    )
    return AuthMiddleware(
        app,
        verifier=verifier,
        metadata=metadata,
        metadata_url=f"{settings.public_url.rstrip('/')}{WELL_KNOWN}/mcp" if settings.public_url else None,
        entry_scopes=entry_scopes(router),
        admin_scope=settings.auth_admin_scope,
        loopback_admin=settings.loopback_admin,
        limiter=limiter,
        stats=stats,
        max_body_size=settings.max_body_size,
        required_scopes=settings.auth_required_scopes,
    )
