"""The SDK's handshake-era (2025-11-25 and older) sessions as the fast path reads them: the one module that
knows how ``StreamableHTTPSessionManager`` keeps its sessions.

The fast path answers a request on an existing session without the SDK's per-request machinery, so it
must see the session exactly as the SDK would when the request arrives. What it relies on, each pinned
against the SDK by tests/supervisor/test_sdk_sessions.py:

- the manager's table of sessions by id (``_server_instances``) and the principal each is bound to
  (``_session_owners``, compared as the manager compares it); a session that ends (DELETE, idle timeout,
  a crash) leaves the table at once, so its id is then unknown here as well;
- a session's transport: ``is_terminated``; its idle countdown (``idle_scope``, ``_requests_in_flight``,
  ``_idle_timeout``), held while a request is served as ``handle_request`` holds it; the per-request
  streams its message router sends a request's messages to (``_request_streams``, keyed by ``str(id)``);
- the session's ``Connection`` (read by a server middleware from the request context's
  ``ServerSession._connection``, as the SDK serves ``initialize``): the negotiated version, whether the
  handshake let requests in, its per-connection ``state``, the client's capabilities; its dispatcher
  (``Connection.outbound``) sending a request tied to an inbound request id (``_related_request_id``,
  which routes it onto that request's stream); its exit stack, closed when the session's loop ends.

Only sessions the SDK answers with an event stream and without resumability are offered (``json_response``
and ``event_store`` off, as front.py builds the manager): anything else stays the SDK's.

Concurrency: used from the supervisor's one event loop only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import (
    REQUEST_STREAM_BUFFER_SIZE,
    EventMessage,
    StreamableHTTPServerTransport,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import CallOptions, coerce_request_id
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp_types import RequestId

CancelHook = Callable[[bool], None]
"""Ends a fast-path request in flight: ``hook(True)`` when the client cancelled it
(``notifications/cancelled``), ``hook(False)`` when its session ended."""


class Session:
    """One handshake-era session of the SDK, as ``SessionTable.find`` returns it."""

    def __init__(self, session_id: str, connection: Connection, transport: StreamableHTTPServerTransport,
                 dispatcher: JSONRPCDispatcher[Any]) -> None:  # fmt: skip
        self.id = session_id
        self.connection = connection
        self.transport = transport
        self._dispatcher = dispatcher
        self._calls: dict[RequestId, CancelHook] = {}

    @property
    def version(self) -> str:
        """The protocol version the handshake negotiated (what the SDK serves every request at)."""
        return self.connection.protocol_version

    @property
    def accepts_requests(self) -> bool:
        """Whether the handshake let requests in (the SDK refuses others with -32602 until then)."""
        return self.connection.initialize_accepted

    def hold(self) -> None:
        """A request is being served: the session cannot expire until ``release`` (as the transport's
        ``handle_request`` holds it)."""
        transport = self.transport
        if transport.idle_scope is not None and transport._idle_timeout is not None:
            transport._requests_in_flight += 1
            transport.idle_scope.deadline = math.inf

    def release(self) -> None:
        """The request ``hold`` counted is answered: the idle countdown restarts when none is left."""
        transport = self.transport
        if transport.idle_scope is not None and transport._idle_timeout is not None:
            transport._requests_in_flight -= 1
            if not transport._requests_in_flight:
                transport.idle_scope.deadline = anyio.current_time() + transport._idle_timeout

    def track(self, request_id: RequestId, hook: CancelHook) -> None:
        """Note a fast-path request in flight, ended through ``hook`` (``CancelHook``) if the client
        cancels it or the session ends; ``untrack`` must follow."""
        self._calls[coerce_request_id(request_id)] = hook

    def untrack(self, request_id: RequestId, hook: CancelHook) -> None:
        """Forget the request ``track`` noted (unless a newer request reused its id)."""
        key = coerce_request_id(request_id)
        if self._calls.get(key) is hook:
            del self._calls[key]

    def cancel(self, params: Mapping[str, Any] | None) -> None:
        """A ``notifications/cancelled`` with ``params`` arrived on this session: end the fast-path
        request it names, if one is in flight (the SDK's dispatcher does the same for its own)."""
        request_id = (params or {}).get("requestId")
        if isinstance(request_id, (int, str)) and not isinstance(request_id, bool):
            hook = self._calls.get(coerce_request_id(request_id))
            if hook is not None:
                hook(True)

    def ended(self) -> None:
        """The session's loop ended: end every fast-path request still in flight on it."""
        for hook in list(self._calls.values()):
            hook(False)
        self._calls.clear()

    async def ask(
        self, related_id: RequestId, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None
    ) -> dict[str, Any]:
        """Send the client a request tied to the request ``related_id`` (so it rides that request's
        stream, ``route``) through the session's dispatcher, which matches the client's answer to it.

        Raises:
            MCPError: the client answered with an error, or the session closed.
        """
        return await self._dispatcher.send_raw_request(method, params, opts, _related_request_id=related_id)

    def route(self, request_id: RequestId) -> MemoryObjectReceiveStream[EventMessage]:
        """The messages the session's router sends for request ``request_id`` from now on (the requests
        ``ask`` sends); ``unroute`` must follow. The stream ends when the session is terminated."""
        send, receive = anyio.create_memory_object_stream[EventMessage](REQUEST_STREAM_BUFFER_SIZE)
        self.transport._request_streams[str(request_id)] = (send, receive)
        return receive

    def unroute(self, request_id: RequestId, receive: MemoryObjectReceiveStream[EventMessage]) -> None:
        """Stop ``route``: the stream is closed and forgotten (unless a newer request reused the id)."""
        key = str(request_id)
        entry = self.transport._request_streams.get(key)
        if entry is not None and entry[1] is receive:
            del self.transport._request_streams[key]
            entry[0].close()
        receive.close()


class SessionTable:
    """The sessions of ``manager`` that the fast path may serve, learnt as the SDK opens them: a server
    middleware added to ``server`` records each session's connection."""

    def __init__(self, manager: StreamableHTTPSessionManager, server: Server[Any]) -> None:
        self._manager = manager
        self._sessions: dict[str, Session] = {}
        self.serves_sessions = (
            not manager.stateless and not manager.json_response and manager.event_store is None
        )
        """Whether the SDK answers session requests as this table's users do (an event stream, no
        resumability): when not, ``find`` finds nothing."""
        server.middleware.append(self._record)

    def __len__(self) -> int:
        return len(self._sessions)

    def find(self, session_id: str, user: Any) -> Session | None:
        """The session ``session_id`` names, when the SDK would serve a request on it now from ``user``
        (the ASGI scope's ``user``): known, bound to the same principal, neither ended nor ending; else
        ``None`` (the SDK answers: 404 for an unknown, deleted or foreign id)."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        manager = self._manager
        transport = session.transport
        if manager._server_instances.get(session_id) is not transport or transport.is_terminated:
            return None
        if transport.idle_scope is not None and transport.idle_scope.cancel_called:
            return None  # its idle time ran out: the SDK answers that it ended
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        if requestor != manager._session_owners.get(session_id):
            return None
        return session

    async def _record(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Server middleware: note the connection of every session the SDK serves a message on (its
        ``initialize`` first), and forget it when the session's loop ends."""
        connection = getattr(ctx.session, "_connection", None)
        session_id = getattr(connection, "session_id", None)
        if session_id is not None and session_id not in self._sessions and self.serves_sessions:
            self._add(session_id, connection)
        return await call_next(ctx)

    def _add(self, session_id: str, connection: Any) -> None:
        transport = self._manager._server_instances.get(session_id)
        dispatcher = getattr(connection, "outbound", None)
        if transport is None or not isinstance(connection, Connection):
            return
        if not isinstance(dispatcher, JSONRPCDispatcher):
            return
        session = Session(session_id, connection, transport, dispatcher)
        self._sessions[session_id] = session
        connection.exit_stack.callback(self._forget, session)

    def _forget(self, session: Session) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        session.ended()
