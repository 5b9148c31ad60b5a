"""``Principal``: who made a request, as the supervisor verified it from a bearer token.

The supervisor puts it in the ``_meta`` of a CALL frame under ``PRINCIPAL_META`` (a key it always removes
from what a client sends first), and ``ToolContext.principal`` reads it back. Plain data only: never the
token itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PRINCIPAL_META = "io.github.mcp-supervisor/principal"
"""``_meta`` key of the caller's principal in a CALL; set by the supervisor only, never taken from a client."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        subject: The token's ``sub`` (unique per issuer), or its client id when it has no subject.
        scopes: The scopes the token grants.
        claims: Selected claims of the token (``iss``, ``aud``, ``exp``, ``client_id``, ``name``, ...).
    """

    subject: str
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_meta(self) -> dict[str, Any]:
        """The principal as the plain data a CALL's ``_meta`` carries."""
        return {"subject": self.subject, "scopes": sorted(self.scopes), "claims": dict(self.claims)}

    @classmethod
    def from_meta(cls, data: Any) -> Principal | None:
        """The principal of ``to_meta`` data; ``None`` for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("subject"), str):
            return None
        scopes = data.get("scopes")
        claims = data.get("claims")
        return cls(
            data["subject"],
            frozenset(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else frozenset(),
            claims if isinstance(claims, dict) else {},
        )
