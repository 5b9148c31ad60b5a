"""The fast path: stateless (2026-07-28) ``tools/call`` and ``tools/list``, and the common requests on a
handshake-era session, answered without the SDK's per-request machinery, with exactly the answer the SDK
would give.

For every stateless POST the SDK builds a Starlette request, a ``Connection``, a ``ServerRunner`` and a
``ServerSession``, an anyio task group and memory stream, and goes through FastAPI's routing and
middleware; that is most of the front's CPU per call (see docs/performance.md). This ASGI wrapper sits in
front of the whole app and takes only the common case: a POST to ``/mcp`` whose headers and body pass every
check the SDK makes — run with the SDK's own functions (``classify_inbound_request``,
``validate_client_request``, ``validate_mcp_param_headers``, ``serialize_server_result``). A ``tools/call``
may ask for progress and log messages (``progressToken``, ``io.modelcontextprotocol/logLevel`` in
``_meta``): they reach the client on the response's event stream as the SDK sends them
(``fastpath_stream``).

Anything else is handed to the full app untouched, with the body replayed: another method or version, a
notification, a duplicated header, a refused Host or Origin, a body that does not parse or validate. So
every error response is the SDK's own, and the fast path only ever answers requests the SDK would answer
with a result. What it must do besides, it does as the SDK's single-exchange entry does: a call that
notifies or outlives ``SSE_COMMIT_AFTER`` switches to ``text/event-stream`` with keep-alive pings, and a
client that disconnects cancels its call.

A POST on an existing handshake-era session (``Mcp-Session-Id`` with a handshake protocol version or
none) is ``fastpath_session``'s: ``tools/call``, ``tools/list`` and ``ping`` are answered as the session
would answer them, everything else handed over the same way.

A function that asks the client something (``ctx.sample``, ``ctx.elicit``, ``ctx.list_roots``) is answered
here with the first ``input_required`` round (``input_required.InputRound``, the same as the SDK path); the
client's retry carries ``inputResponses`` and ``requestState`` and goes to the SDK path.

Header values are compared without the whitespace around them (RFC 9110 §5.5, checked by the
2026-07-28 conformance scenario); the SDK path gets them trimmed too (``header_values.py``).
tests/integration/test_fastpath.py sends the cases to both and compares the answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.shared.inbound import (
    InboundModernRoute,
    classify_inbound_request,
    validate_mcp_param_headers,
)
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    LOG_LEVEL_META_KEY,
    ClientCapabilities,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import INTERNAL_ERROR, CallError, error_object
from shared.results import call_error_result

from .auth.caller import call_meta, scopes_of
from .auth.caller import current as current_principal
from .fastpath_checks import HeaderCheck, NotFast, ParamsCheck, decode_envelope
from .fastpath_render import InvalidResult, ResultRenderer
from .fastpath_session import SessionPath
from .fastpath_stream import ResponseStream, answer_json, progress_token
from .fastpath_tasks import TASK_PARAMS_KEYS, FastTasks
from .http_stats import HTTPStats
from .input_required import InputFlow, InputRound
from .listing import ToolListing
from .pagination import DEFAULT_PAGE_SIZE
from .request_body import read_body, replaying
from .router import Router
from .sdk_sessions import SessionTable
from .tasks_front import PLAIN, TASK

logger = logging.getLogger("mcp_supervisor.fastpath")

_METHODS = frozenset({"tools/call", "tools/list", *TASK_PARAMS_KEYS})
_PARAMS_KEYS = {
    "tools/call": frozenset({"name", "arguments", "_meta"}),
    "tools/list": frozenset({"_meta"}),
    **TASK_PARAMS_KEYS,
}
_STREAM_META_KEYS = ("progressToken", LOG_LEVEL_META_KEY)
"""``_meta`` keys that ask for notifications on the response stream: taken for ``tools/call``, and for
``tools/list``, which never notifies (answered in JSON, as by the SDK)."""
_SESSION_VERSIONS = frozenset({None, *HANDSHAKE_PROTOCOL_VERSIONS})
"""``MCP-Protocol-Version`` values the SDK serves on a session (others go to its 2026-07-28 entry)."""


@dataclass
class FastPathStats:
    """How the POSTs to ``/mcp`` were served (in /status and /metrics)."""

    served: int = 0
    """Answered by the fast path."""
    handed_over: int = 0
    """Handed to the SDK: another era or method, a notification, or anything the SDK answers with an error."""


class FastPath:
    """ASGI wrapper: serves the common stateless ``tools/call`` and ``tools/list`` (and with ``sessions``
    the common session requests) itself, everything else through ``app``.

    ``allowed_hosts`` and ``allowed_origins`` are the SDK's ``TransportSecuritySettings`` lists (exact
    values, or ``base:*`` for any port); a value they refuse goes to the SDK, which refuses it. With
    ``sessions`` (the SDK's handshake-era sessions) the requests on a session are served too;
    ``remember(connection)`` marks a session's connection that listed or called tools (the SDK path's
    handlers mark theirs), so it is told when a list changes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        server: Server[Any],
        router: Router,
        input_flow: InputFlow,
        allowed_hosts: list[str],
        allowed_origins: list[str],
        max_body_size: int,
        list_page_size: int = DEFAULT_PAGE_SIZE,
        stats: FastPathStats,
        http_stats: HTTPStats | None = None,
        sessions: SessionTable | None = None,
        remember: Callable[[Connection], None] = lambda connection: None,
    ) -> None:
        self.app = app
        self.server = server
        self.router = router
        self.input_flow = input_flow
        self.max_body_size = max_body_size
        self.stats = stats
        self.http_stats = http_stats
        self._headers = HeaderCheck(allowed_hosts, allowed_origins)
        self._render = ResultRenderer(server.server_info_stamp)
        self._tools = ToolListing(router, list_page_size)
        self._tasks = FastTasks(router, self._render)
        self._params = ParamsCheck()
        self._sessions = sessions if sessions is not None and sessions.serves_sessions else None
        self._session_path = SessionPath(
            router, self._render, self._params, self._tasks, self._list_tools, remember
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listings: dict[tuple[int, str, frozenset[str] | None], bytes] = {}
        """Serialized ``tools/list`` results by (catalog version, protocol version, view)."""
        if server.cache_hints:  # the SDK would add them to results; this path does not
            raise ValueError("the fast path serves a server without cache hints")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mcp" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw_headers}
        if len(headers) != len(raw_headers):  # a repeated header: the SDK decides which copy counts
            self.stats.handed_over += 1
            await self.app(scope, receive, send)
            return
        if (
            "mcp-session-id" in headers
            and self._sessions is not None
            and headers.get("mcp-protocol-version") in _SESSION_VERSIONS
        ):
            await self._serve_session(scope, receive, send, headers)
            return
        # RFC 9110 §5.5: a field value excludes the whitespace around it (the SDK compares it untrimmed)
        headers = {name: value.strip(" \t") for name, value in headers.items()}
        method = headers.get("mcp-method")
        if (
            method not in _METHODS
            or headers.get("mcp-protocol-version") not in MODERN_PROTOCOL_VERSIONS
            or not self._headers.stateless(headers)
        ):
            self.stats.handed_over += 1
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        messages: deque[Message] = deque()
        try:
            body = await self._read_body(headers, receive, messages)
            request_id, version, params, plan = self._parse(body, headers)
        except NotFast:
            self.stats.handed_over += 1
            await self.app(scope, replaying(messages, receive), send)
            return
        self.stats.served += 1
        status = 500
        try:
            if method == "tools/list":
                status = await answer_json(send, request_id, await self._list_tools(version))
            elif method != "tools/call":
                answer = await self._tasks.answer(method, version, params, headers)
                status = await answer_json(send, request_id, *answer)
            elif plan == TASK:
                status = await answer_json(send, request_id, *await self._tasks.create(version, params))
            else:
                status = await self._call_tool(send, receive, request_id, version, params)
        finally:
            if self.http_stats is not None:
                self.http_stats.record("POST", "/mcp", status, time.perf_counter() - started)

    async def _serve_session(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        """A POST on a handshake-era session: answered by ``fastpath_session`` when it takes it, else by
        the SDK (with the body replayed)."""
        assert self._sessions is not None
        started = time.perf_counter()
        messages: deque[Message] = deque()
        session = self._sessions.find(headers["mcp-session-id"], scope.get("user"))
        try:
            if session is None or not self._headers.session(headers):
                raise NotFast
            request = self._session_path.parse(session, await self._read_body(headers, receive, messages))
        except NotFast:
            self.stats.handed_over += 1
            await self.app(scope, replaying(messages, receive), send)
            return
        self.stats.served += 1
        try:
            await self._session_path.answer(session, request, send)
        finally:
            if self.http_stats is not None:
                self.http_stats.record("POST", "/mcp", 200, time.perf_counter() - started)

    # -- checks ------------------------------------------------------------------------------------

    async def _read_body(self, headers: dict[str, str], receive: Receive, messages: deque[Message]) -> bytes:
        """The whole body, keeping every message read in ``messages`` for a replay.

        Raises:
            NotFast: the body is (or says it is) over the limit, or the client went away.
        """
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_size):
            raise NotFast
        body = await read_body(receive, messages, self.max_body_size)
        if body is None:
            raise NotFast
        return body

    def _parse(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int | str, str, dict[str, Any], str | None]:
        """The request's id, protocol version and params when the SDK would accept it as is, and for a
        ``tools/call`` its plan (``tasks_front.plan_call``).

        Raises:
            NotFast: anything the SDK answers with an error, or serves with an event stream.
        """
        decoded = decode_envelope(body)
        request_id = decoded.get("id")
        params = decoded.get("params")
        if (
            not isinstance(request_id, (int, str))
            or isinstance(request_id, bool)
            or not isinstance(params, dict)
        ):
            raise NotFast
        verdict = classify_inbound_request(decoded, headers=headers)
        if not isinstance(verdict, InboundModernRoute):
            raise NotFast
        method = decoded["method"]
        meta = params["_meta"]
        streamed = any(key in meta for key in _STREAM_META_KEYS)
        if params.keys() - _PARAMS_KEYS[method] or (streamed and method not in ("tools/call", "tools/list")):
            raise NotFast  # a cursor, the input-required flow, or notifications on another method: the SDK's
        if "progressToken" in meta and progress_token(meta) is None:
            raise NotFast  # a token the SDK ignores or refuses
        version = verdict.protocol_version
        if method in TASK_PARAMS_KEYS:
            if not self._tasks.passes(method, version, params, headers):
                raise NotFast
            return request_id, version, params, None
        if method == "tools/call" and (
            not isinstance(params.get("name"), str) or not isinstance(params.get("arguments", {}), dict)
        ):
            raise NotFast
        self._params.validate(method, version, params)
        plan = None
        if method == "tools/call":
            plan = self._tasks.plan(version, params)
            if plan is None or (streamed and plan != PLAIN) or self._param_headers_refused(params, headers):
                raise NotFast
        return request_id, version, params, plan

    def _param_headers_refused(self, params: dict[str, Any], headers: dict[str, str]) -> bool:
        """Whether the ``Mcp-Param-*`` headers disagree with the arguments (the SDK's check)."""
        arguments = params.get("arguments") or {}
        if not arguments and not any(name.startswith("mcp-param-") for name in headers):
            return False
        entry = self.router.tool(params["name"])
        schema = None if entry is None else entry.get("inputSchema")
        return schema is not None and validate_mcp_param_headers(schema, arguments, headers) is not None

    # -- answers -----------------------------------------------------------------------------------

    async def _list_tools(self, version: str) -> bytes:
        """The ``tools/list`` result, serialized once per catalog version, protocol version and view
        (the tools the caller's scopes show it)."""
        view = self._tools.view(scopes_of(current_principal.get()))
        result = await self._tools.result(view=view)
        key = (self.router.catalog_version, version, view)
        listing = self._listings.get(key)
        if listing is None:
            data = result.model_dump(by_alias=True, mode="json", exclude_none=True)
            listing = self._render.serialize("tools/list", version, data)
            # a listing of an older catalog is never asked for again
            self._listings = {k: v for k, v in self._listings.items() if k[0] == key[0]} | {key: listing}
        return listing

    async def _call_tool(
        self, send: Send, receive: Receive, request_id: int | str, version: str, params: dict[str, Any]
    ) -> int:
        """Run the call and answer: JSON, or an event stream once it notifies the client or outlives
        ``SSE_COMMIT_AFTER`` (``fastpath_stream.ResponseStream``).

        A client that disconnects cancels the call (the router sends CANCEL to the worker) and gets no
        more of the answer; that returns normally, with status 499 for the statistics.
        """
        loop = self._loop = self._loop or asyncio.get_running_loop()
        caller = asyncio.current_task(loop)  # with the loop: no get_running_loop (a getpid on 3.11)
        assert caller is not None
        disconnected: list[bool] = []
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, caller, disconnected))
        stream = ResponseStream(send, loop)
        try:
            result, error = await self._outcome(version, params, stream)
            watcher.cancel()
            return await stream.finish(request_id, result, error)
        except asyncio.CancelledError:
            if not disconnected:
                raise
            caller.uncancel()
            return 499
        finally:
            watcher.cancel()
            stream.close()

    async def _outcome(
        self, version: str, params: dict[str, Any], stream: ResponseStream
    ) -> tuple[bytes | None, dict[str, Any] | None]:
        """The call's serialized result, or the JSON-RPC error to answer instead (as the SDK's handler);
        its progress and log messages go to ``stream`` as the request asked."""
        meta = params["_meta"]
        opened: list[InputRound] = []  # made by the first request the function makes, if it makes one
        try:
            result = await self.router.call(
                params["name"],
                params.get("arguments"),
                timeout=self.router.request_timeout,
                meta=call_meta(meta, current_principal.get()),  # JSON: string keys already
                on_request=_first_round(opened, version, meta),
                **stream.callbacks(version, meta),
            )
        except CallError as exc:
            answer = call_error_result(exc)
            if answer is None and not (opened and opened[0].needs_input):
                return None, error_object(exc)
            result = answer or {}
        except Exception:  # a bug: answered as the SDK answers a handler that raised
            logger.exception("tools/call of %r failed", params["name"])
            return None, {"code": INTERNAL_ERROR, "message": "Internal server error"}
        if opened and opened[0].needs_input:  # the function asked the client: the retry brings the answers
            result = self.input_flow.result(opened[0], "tools/call", params)
        else:
            result["resultType"] = "complete"
        try:
            return self._render.serialize("tools/call", version, result), None
        except InvalidResult:
            return None, {"code": INTERNAL_ERROR, "message": "Handler returned an invalid result"}


def _first_round(
    opened: list[InputRound], version: str, meta: dict[str, Any]
) -> Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]:
    """The call's ``on_request``: the first round of the input-required flow, opened into ``opened`` by
    the function's first request (a plain call pays for one closure, as before the flow)."""

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not opened:
            opened.append(InputRound({}, _client_supports(version, meta), version))
        return await opened[0].on_request(method, params)

    return on_request


def _client_supports(version: str, meta: dict[str, Any]) -> Callable[[ClientCapabilities], bool]:
    """Whether the client declared capabilities, from the request's ``_meta`` (as the SDK's entry reads
    them); the envelope is read only when the function asks the client something."""

    def supports(capabilities: ClientCapabilities) -> bool:
        connection = Connection.from_envelope(
            version, meta.get(CLIENT_INFO_META_KEY), meta.get(CLIENT_CAPABILITIES_META_KEY)
        )
        return connection.check_capability(capabilities)

    return supports


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any], disconnected: list[bool]) -> None:
    """Cancel ``task`` when the client disconnects (noting it in ``disconnected``); runs until then or
    until cancelled."""
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.append(True)
    task.cancel()
