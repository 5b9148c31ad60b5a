"""The principal of the request being served, for the code below the HTTP middleware.

``AuthMiddleware`` puts the verified principal in the ASGI scope (``SCOPE_KEY``, and the SDK's ``user``
and ``auth`` entries, which bind handshake-era sessions to it) and in ``current`` for the request's task.
The SDK path reads it from the request its context carries (``of_context``): a handshake-era session
serves every request in the task of the one that opened it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from shared.principal import PRINCIPAL_META, Principal

SCOPE_KEY = "mcp_supervisor.principal"
"""ASGI scope key of the verified ``Principal``."""

current: ContextVar[Principal | None] = ContextVar("mcp_supervisor_principal", default=None)
"""The principal of the request this task serves (``None``: authorization is off)."""


def of_context(ctx: Any) -> Principal | None:
    """The principal of an SDK request context: from its HTTP request's scope, else ``current``."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and SCOPE_KEY in scope:
        principal: Principal | None = scope[SCOPE_KEY]
        return principal
    return current.get()


def scopes_of(principal: Principal | None) -> frozenset[str] | None:
    """What a caller may see and call: its scopes, or ``None`` (everything) when authorization is off."""
    return None if principal is None else principal.scopes


def subject_of(principal: Principal | None) -> str | None:
    """The principal's subject, ``None`` when authorization is off."""
    return None if principal is None else principal.subject


def call_meta(meta: dict[str, Any] | None, principal: Principal | None) -> dict[str, Any] | None:
    """A call's ``_meta`` as the worker gets it: the client's without any ``PRINCIPAL_META`` it sent, plus
    the verified principal under that key."""
    if meta and PRINCIPAL_META in meta:
        meta = {key: value for key, value in meta.items() if key != PRINCIPAL_META}
    if principal is None:
        return meta or None
    return {**(meta or {}), PRINCIPAL_META: principal.to_meta()}
