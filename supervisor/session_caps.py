"""Handshake-era sessions counted per principal: ``max_sessions_per_principal`` (docs/security.md).

``max_sessions`` bounds every open 2025-11-25 session together; with authorization on, one principal could
still hold all of them and lock every other principal out of new sessions until its own went idle. So the
SDK's session manager gets one more rule, decided where the SDK decides its own limit (``_admit_session``,
under its creation lock, so concurrent ``initialize`` requests of one principal cannot overshoot): a
principal that already has ``max_sessions_per_principal`` open sessions is refused a new one with 429 and
one line naming the setting; its open sessions, and every other principal, are unaffected.

Refused rather than evicting the principal's oldest idle session: between two calls every session is
idle at the HTTP level, so "oldest idle" may well be a session some other process of the same principal
(one service account, many clients) is in the middle of using, and evicting it would cut a conversation
(its subscriptions, log level, pending input) with a 404 that says nothing about why. A refusal lands on
the client that is over its share, at the one request it can act on (end a session with DELETE, or wait
``session_idle_timeout`` for an abandoned one to close). A principal is its subject, as for the rate limit
(one user through two client applications is one principal). Without authorization every client is
anonymous and only ``max_sessions`` applies.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INTERNAL_ERROR, ErrorData, JSONRPCError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .auth.middleware import AuthStats

logger = logging.getLogger("mcp_supervisor.sessions")


class PrincipalOverSessionCap(Exception):
    """Raised by the admission of a session past its principal's cap; answered 429 by the manager."""


class CappedSessionManager(StreamableHTTPSessionManager):
    """The SDK's ``StreamableHTTPSessionManager`` with ``max_sessions_per_principal`` (see the module).

    Counting walks the open sessions' owners (at most ``max_sessions``; ~30 µs for 1,000) on each new
    session, rather than keeping counts that the SDK's several ways of ending a session would have to
    keep in step.
    """

    def __init__(self, *args: Any, max_per_principal: int, stats: AuthStats, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_per_principal = max_per_principal
        self._stats = stats

    def sessions_of(self, requestor: AuthorizationContext) -> int:
        """How many open sessions the principal of ``requestor`` holds."""
        key = _principal(requestor)
        return sum(1 for owner in self._session_owners.values() if _principal(owner) == key)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if requestor is not None and self.sessions_of(requestor) >= self.max_per_principal:
            raise PrincipalOverSessionCap
        return super()._admit_session(requestor)

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super()._handle_stateful_request(scope, receive, send)
        except PrincipalOverSessionCap:  # raised before anything was sent
            self._stats.session_limited += 1
            message = (
                f"Too many open sessions for this principal: {self.max_per_principal} are open "
                "(max_sessions_per_principal); end one (DELETE) or let one idle out"
            )
            logger.info("refused a new session: %s", message)
            body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INTERNAL_ERROR, message=message))
            response = Response(
                body.model_dump_json(by_alias=True, exclude_unset=True),
                status_code=429,
                media_type="application/json",
            )
            await response(scope, receive, send)


def _principal(owner: AuthorizationContext) -> tuple[str | None, str | None]:
    """A session owner's principal: its issuer and subject (its client id when it has no subject)."""
    return owner["issuer"], owner["subject"] or owner["client_id"]
