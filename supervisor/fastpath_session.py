"""The fast path on handshake-era sessions (2025-11-25 and older: the TypeScript SDK, the Inspector, most
desktop clients): ``tools/call``, ``tools/list`` and ``ping`` on an existing session, answered without the
SDK's session machinery, with exactly the answer the SDK's session would give.

A session request reaches the SDK through its session manager, the session's transport (a Starlette
request, an sse-starlette response, memory streams into the session's loop) and its dispatcher (a task,
the middleware chain, the handler): more than half of the front's CPU per call. Here the request is taken
when every check the SDK makes passes, read through ``sdk_sessions`` (the session is known, bound to the
same principal, not ended, past its handshake) and the SDK's own functions (envelope, surface validation
at the negotiated version, the task plan); the call runs with ``forwarding.call_options`` — the SDK path's
own callbacks — over a ``RequestChannel``, so progress, log levels (``logging/setLevel``) and requests to
the client (``ctx.sample``, ``ctx.elicit``, ``ctx.list_roots``, answered through the session) behave as
on the SDK path; the answer is the SDK's event stream (``fastpath_session_stream``).

As on the SDK path: a ``notifications/cancelled`` naming a request in flight cancels it (the worker gets
CANCEL) and its stream ends with -32800 "Request cancelled"; a session that ends (DELETE) cancels its
requests and ends their streams without an answer; a client that disconnects does not cancel its call;
a request being served holds the session against its idle timeout.

Everything else on a session is the SDK's, untouched: ``initialize``, notifications (a cancellation is
read here first), the client's answers, GET streams, DELETE, every other method, and every request a
check refuses (unknown, deleted or foreign session id: 404; no session id: the SDK's 400).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types import INTERNAL_ERROR, RequestId
from starlette.types import Send

from shared.errors import CallError, error_object
from shared.results import call_error_result

from .fastpath_checks import NotFast, ParamsCheck, decode_envelope
from .fastpath_render import InvalidResult, ResultRenderer
from .fastpath_session_stream import RequestChannel, SessionStream
from .fastpath_tasks import FastTasks
from .forwarding import call_options
from .router import Router
from .sdk_sessions import Session

logger = logging.getLogger("mcp_supervisor.fastpath")

_PARAMS_KEYS = {
    "tools/call": frozenset({"name", "arguments", "_meta"}),
    "tools/list": frozenset({"_meta"}),
    "ping": frozenset({"_meta"}),
}
REQUEST_CANCELLED = {"code": -32800, "message": "Request cancelled"}
"""What the SDK's session transport answers a request the client cancelled."""


@dataclass(slots=True)
class SessionRequest:
    """A request on a session that the fast path answers."""

    request_id: RequestId
    method: str
    params: dict[str, Any]


class SessionPath:
    """Parses and answers the requests on a session that the fast path takes (see the module docstring).

    ``list_tools(version)`` is the serialized ``tools/list`` result for the caller; ``remember(connection)``
    marks a connection that talked to us, so it is told when a list changes.
    """

    def __init__(
        self,
        router: Router,
        render: ResultRenderer,
        params_check: ParamsCheck,
        tasks: FastTasks,
        list_tools: Callable[[str], Awaitable[bytes]],
        remember: Callable[[Connection], None],
    ) -> None:
        self._router = router
        self._render = render
        self._params = params_check
        self._tasks = tasks
        self._list_tools = list_tools
        self._remember = remember
        self._loop: asyncio.AbstractEventLoop | None = None

    def parse(self, session: Session, body: bytes) -> SessionRequest:
        """The request in ``body`` when the SDK would serve it as is on ``session``; a
        ``notifications/cancelled`` is applied to the fast path's own requests first.

        Raises:
            NotFast: anything else (the SDK answers it).
        """
        decoded = decode_envelope(body)
        method = decoded.get("method")
        params = decoded.get("params")
        if "id" not in decoded:
            if method == "notifications/cancelled" and isinstance(params, dict):
                session.cancel(params)
            raise NotFast
        request_id = decoded["id"]
        if (
            not isinstance(method, str)
            or method not in _PARAMS_KEYS
            or not isinstance(request_id, (int, str))
            or isinstance(request_id, bool)
            or not session.accepts_requests
        ):
            raise NotFast
        if params is None and method != "tools/call":
            params = {}
        if not isinstance(params, dict) or params.keys() - _PARAMS_KEYS[method]:
            raise NotFast
        meta = params.get("_meta", {})
        if not isinstance(meta, dict) or (
            "progressToken" in meta and progress_token_from_params(params) is None
        ):
            raise NotFast  # a token the SDK reads otherwise: its path decides
        if method == "tools/call" and (
            not isinstance(params.get("name"), str) or not isinstance(params.get("arguments", {}), dict)
        ):
            raise NotFast
        self._params.validate(method, session.version, decoded.get("params"))
        if method == "tools/call" and self._tasks.plan(session.version, params) is None:
            raise NotFast  # refused: the SDK's handler answers
        return SessionRequest(request_id, method, params)

    async def answer(self, session: Session, request: SessionRequest, send: Send) -> None:
        """Serve ``request`` on ``session`` and send the SDK's event stream (see the module docstring).

        Cancellation: cancelling it (the server stopping) cancels the call; the stream is left as is.
        """
        loop = self._loop = self._loop or asyncio.get_running_loop()
        stream = SessionStream(send, loop, session.id)
        session.hold()
        try:
            await stream.open()
            version = session.version
            if request.method == "tools/call":
                self._remember(session.connection)
                await self._call_tool(session, stream, request.request_id, request.params)
            elif request.method == "tools/list":
                self._remember(session.connection)
                await stream.finish(request.request_id, await self._list_tools(version), None)
            else:
                await stream.finish(request.request_id, self._render.serialize("ping", version, {}), None)
        finally:
            stream.close()
            session.release()

    async def _call_tool(
        self, session: Session, stream: SessionStream, request_id: RequestId, params: dict[str, Any]
    ) -> None:
        """Run the call as the SDK path's handler does and answer it; a cancellation by the client or
        the end of the session (``Session.track``) ends it as the SDK's transport would."""
        caller = asyncio.current_task(self._loop)
        assert caller is not None
        ended: list[bool] = []  # [True]: the client cancelled it; [False]: the session ended

        def end(by_client: bool) -> None:
            if not ended:
                ended.append(by_client)
                caller.cancel()

        meta = params.get("_meta")
        channel = RequestChannel(session, request_id, progress_token_from_params(params), stream)
        session.track(request_id, end)
        try:
            try:
                result, error = await self._outcome(session, channel, params, meta)
            finally:
                session.untrack(request_id, end)
                channel.close()
        except asyncio.CancelledError:
            if not ended:
                raise
            caller.uncancel()
            if ended[0]:
                await stream.finish(request_id, None, REQUEST_CANCELLED)
            else:
                await stream.end()
            return
        await stream.finish(request_id, result, error)

    async def _outcome(
        self, session: Session, channel: RequestChannel, params: dict[str, Any], meta: dict[str, Any] | None
    ) -> tuple[bytes | None, dict[str, Any] | None]:
        """The call's serialized result, or the JSON-RPC error to answer instead, as the SDK path's
        ``tools/call`` handler and its session's dispatcher make them."""
        version = session.version
        ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
            session=ServerSession(channel, session.connection),
            lifespan_context=None,
            protocol_version=version,
            method="tools/call",
            params=params,
            request_id=channel.request_id,
        )
        name = params["name"]
        try:
            result = await self._router.call(
                name, params.get("arguments"), timeout=self._router.request_timeout, **call_options(ctx, meta)
            )
        except CallError as exc:
            answer = call_error_result(exc)
            if answer is None:
                return None, error_object(exc)
            result = answer
        except (
            Exception
        ) as exc:  # a bug: answered as the SDK's session dispatcher answers a handler that raised
            logger.exception("tools/call of %r failed", name)
            return None, {"code": 0, "message": str(exc)}
        try:
            return self._render.serialize("tools/call", version, result), None
        except InvalidResult:
            return None, {"code": INTERNAL_ERROR, "message": "Handler returned an invalid result"}
