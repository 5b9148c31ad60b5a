"""What both token verifiers share: the ``Verifier`` protocol, ``InvalidToken`` and claims → principal."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from shared.principal import Principal

KEPT_CLAIMS = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "azp",
    "name",
    "email",
    "preferred_username",
    "groups",
    "roles",
)
"""The claims a principal carries to the tools; the others (and the token) stay in the supervisor."""


class InvalidToken(Exception):
    """The bearer token is not acceptable; the message says why in one line (logged, never sent)."""


class Verifier(Protocol):
    """Turns a bearer token into the principal it stands for."""

    async def verify(self, token: str) -> Principal:
        """The token's principal.

        Raises:
            InvalidToken: the token is malformed, expired, not yet valid, for another audience, from another
                issuer, badly signed, inactive, or its issuer cannot be reached.
        """
        ...


def scopes_of_claims(claims: Mapping[str, Any]) -> frozenset[str]:
    """The granted scopes: ``scope`` (space-separated, RFC 9068 / RFC 7662) or a ``scp`` list."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    if isinstance(scp, str):
        return frozenset(scp.split())
    return frozenset()


def principal_of_claims(claims: Mapping[str, Any]) -> Principal:
    """The principal of verified claims: ``sub``, else the client id.

    Raises:
        InvalidToken: the claims name neither a subject nor a client.
    """
    subject = claims.get("sub") or claims.get("client_id") or claims.get("azp")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("the token names no subject")
    kept = {key: claims[key] for key in KEPT_CLAIMS if key in claims}
    return Principal(subject, scopes_of_claims(claims), kept)


def audience_matches(audience: Any, expected: str) -> bool:
    """Whether a token's ``aud`` (a string or a list) names ``expected``, a trailing slash aside."""
    wanted = expected.rstrip("/")
    values = audience if isinstance(audience, list) else [audience]
    return any(isinstance(value, str) and value.rstrip("/") == wanted for value in values)


class InsufficientScope(InvalidToken):
    """A valid token without some of the scopes every request needs (answered 403, not 401)."""

    def __init__(self, missing: Collection[str]) -> None:
        self.missing = frozenset(missing)
        super().__init__(f"the token lacks the scopes {' '.join(sorted(self.missing))}")


class VerifierUnavailable(Exception):
    """The token cannot be checked now: the authorization server (its introspection endpoint, or its keys
    that were never fetched) cannot be reached. Answered 503 with ``Retry-After``, not 401: the token may
    well be good, and a client told 401 would throw it away."""
