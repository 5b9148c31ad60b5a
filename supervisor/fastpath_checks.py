"""The checks the fast path makes before it answers a request itself: the SDK's own, so that a request
the SDK would refuse (or answer otherwise) is always handed to it.

- ``HeaderCheck``: Content-Type, Host, Origin and Accept, as the SDK's transports check them. The SDK's
  versions need a Starlette ``Request`` and log a warning, so calling them would log every refusal twice
  (the SDK logs again when the request is handed over); these mirror them, and a mismatch can only hand
  a request over, never accept one the SDK refuses (tests/integration/test_fastpath*.py send each case to
  both).
- ``ParamsCheck``: the SDK's surface validation of a request's params, remembered per ``_meta``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from mcp_types import methods as spec_methods

VALID_CACHE_SIZE = 1024
"""Remembered validations (distinct ``_meta`` shapes) before the memory is cleared."""


class NotFast(Exception):
    """The request leaves the fast path for the SDK."""


ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method", "params"})


def decode_envelope(body: bytes) -> dict[str, Any]:
    """The JSON-RPC request object of ``body``.

    Raises:
        NotFast: not JSON, not an object, not ``"jsonrpc": "2.0"``, or a member beyond the envelope's
            (the SDK then answers it, with its own error).
    """
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotFast from None
    if not isinstance(decoded, dict) or decoded.get("jsonrpc") != "2.0" or decoded.keys() - ENVELOPE_KEYS:
        raise NotFast
    return decoded


class HeaderCheck:
    """The SDK's header checks. ``allowed_hosts`` and ``allowed_origins`` are its
    ``TransportSecuritySettings`` lists (exact values, or ``base:*`` for any port)."""

    def __init__(self, allowed_hosts: list[str], allowed_origins: list[str]) -> None:
        self._host_allowed = _matcher(allowed_hosts)
        self._origin_allowed = _matcher(allowed_origins)

    def stateless(self, headers: Mapping[str, str]) -> bool:
        """Whether a 2026-07-28 POST passes: Content-Type, Host, Origin and Accept (SSE mode)."""
        return headers.get("content-type", "").lower().startswith("application/json") and self._common(
            headers
        )

    def session(self, headers: Mapping[str, str]) -> bool:
        """Whether a POST on a handshake-era session passes its transport's checks (event-stream mode):
        the Content-Type both as the security check (a prefix, any case) and as the POST handler (one
        of the comma-separated types before any parameter, exactly) read it."""
        content_type = headers.get("content-type", "")
        return (
            content_type.lower().startswith("application/json")
            and any(part.strip() == "application/json" for part in content_type.split(";")[0].split(","))
            and self._common(headers)
        )

    def _common(self, headers: Mapping[str, str]) -> bool:
        if not self._host_allowed(headers.get("host")) or not self._origin_allowed(
            headers.get("origin"), True
        ):
            return False
        accepted = {
            part.strip().split(";")[0].strip().lower() for part in headers.get("accept", "").split(",")
        }
        any_type = "*/*" in accepted
        has_json = any_type or "application/json" in accepted or "application/*" in accepted
        has_sse = any_type or "text/event-stream" in accepted or "text/*" in accepted
        return has_json and has_sse


class ParamsCheck:
    """The SDK's surface validation of a request's params (``validate_client_request``), remembered.

    The callers take only params whose outcome depends on ``_meta`` alone past their own checks (a
    ``tools/call`` name that is a string, arguments that are an object), and a client sends the same
    ``_meta`` call after call but for its progress token, left out of the key (only strings and integers
    are taken: always valid).
    """

    def __init__(self) -> None:
        self._valid: set[tuple[str, str, bytes]] = set()

    def validate(self, method: str, version: str, params: dict[str, Any] | None) -> None:
        """Raises:
        NotFast: the SDK would refuse the params."""
        if params is None:
            shape = b"~"  # no params at all
        elif "_meta" not in params:
            shape = b"-"
        else:
            meta = params["_meta"]
            if isinstance(meta, dict) and "progressToken" in meta:
                meta = {name: value for name, value in meta.items() if name != "progressToken"}
            try:
                shape = orjson.dumps(meta)
            except orjson.JSONEncodeError:
                raise NotFast from None
        key = (method, version, shape)
        if key in self._valid:
            return
        try:
            spec_methods.validate_client_request(method, version, params)
        except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
            raise NotFast from None
        if len(self._valid) >= VALID_CACHE_SIZE:
            self._valid.clear()
        self._valid.add(key)


def _matcher(allowed: list[str]) -> Callable[..., bool]:
    """The SDK's Host/Origin rule: exact values, or ``base:*`` for ``base:<any port>``; absent passes
    only when ``absent_ok`` (Origin may be absent, Host may not)."""
    exact = frozenset(allowed)
    prefixes = tuple(value[:-1] for value in allowed if value.endswith(":*"))

    def allowed_value(value: str | None, absent_ok: bool = False) -> bool:
        if not value:
            return absent_ok
        return value in exact or value.startswith(prefixes)

    return allowed_value
