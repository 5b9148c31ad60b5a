"""Verifying JWT access tokens (RFC 9068) against the issuer's JWKS, with PyJWT.

A token is accepted when its signature verifies with an asymmetric algorithm (RS, PS, ES, EdDSA: ``none``
and HMAC are refused before any key is looked at, so a public key can never serve as an HMAC secret), it
is within ``exp``/``nbf`` (``LEEWAY`` seconds of clock skew), its ``iss`` is the configured issuer, its
``aud`` names this resource (RFC 8707) and it grants the required scopes.
"""

from __future__ import annotations

from collections.abc import Collection

import jwt

from shared.principal import Principal

from .jwks import JWKSCache
from .tokens import InsufficientScope, InvalidToken, audience_matches, principal_of_claims

ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Signature algorithms accepted: asymmetric only."""
LEEWAY = 30.0
"""Seconds of clock skew tolerated on ``exp`` and ``nbf``."""


class JWTVerifier:
    """Verifies the JWTs of one issuer for one audience."""

    def __init__(
        self, keys: JWKSCache, issuer: str, audience: str, required_scopes: Collection[str] = ()
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.required_scopes = frozenset(required_scopes)

    async def verify(self, token: str) -> Principal:
        """The token's principal.

        Raises:
            InvalidToken: see the module docstring; required scopes missing is ``InsufficientScope``.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise InvalidToken(f"algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        declared = key._jwk_data.get("alg")  # a key bound to one algorithm serves only that one
        if declared is not None and declared != algorithm:
            raise InvalidToken(f"key {kid!r} is a {declared} key, not {algorithm}")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                leeway=LEEWAY,
                issuer=self.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # a key of another type: InvalidKeyError
            raise InvalidToken(str(exc)) from None
        if not audience_matches(claims.get("aud"), self.audience):
            raise InvalidToken(f"the token is not for {self.audience}")
        principal = principal_of_claims(claims)
        missing = self.required_scopes - principal.scopes
        if missing:
            raise InsufficientScope(missing)
        return principal
