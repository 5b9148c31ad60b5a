"""``ToolContext``: what a running tool may ask of the server.

A tool gets one by annotating a parameter with ``ToolContext``; the parameter is injected by the worker and
is not part of the tool's input schema. The same class serves both runtimes and both kinds of function:
``report_progress`` and ``log`` never block and are safe to call from a sync tool running in the worker's
thread pool. They return an already-completed awaitable, so ``await ctx.report_progress(...)`` (the usual
MCP SDK spelling) and a plain ``ctx.report_progress(...)`` both work.

``resource_updated`` tells the subscribed clients that a resource changed; it never blocks either.

``sample``, ``elicit``, ``list_roots`` and ``call_tool`` are requests that travel worker → router →
client (or → another tool) and back; they are coroutines for ``async def`` tools, awaited on the worker's
own event loop. In the stateless 2026-07-28 era the first three have no channel to the client in the
middle of a call: the server answers the call with ``input_required`` and runs the function again when the
client retries with the answers (``supervisor/input_required.py``; docs/tools.md). Each such request has a
key naming it across those runs: the ``key=`` argument, else ``<kind>-<n>`` in the order the run asks.
``run_as_task`` is the same kind of request, answered by the server itself (the MCP tasks extension).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from .errors import ClientRequestError
from .principal import PRINCIPAL_META, Principal
from .protocol import Log, Message, Progress, ResourceUpdated

INPUT_KEY_META = "io.github.mcp-supervisor/inputKey"
"""``_meta`` key of a request to the client carrying its key (the router takes it out before sending)."""
START_TASK_METHOD = "io.github.mcp-supervisor/startTask"
"""The request ``ctx.run_as_task()`` makes; the server answers it and never sends it to a client."""
TASK_RUN_META = "io.github.mcp-supervisor/taskRun"
"""``_meta`` key the router sets on a call that is a run of an MCP task: its timeout is then a protocol
error (the task fails), not a tool result."""

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


class Sent:
    """An awaitable that is already done: the frame was queued when the method returned."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_SENT = Sent()


class ToolContext:
    """The context of one tool call.

    Attributes:
        call_id: The router's id of this call (unique per supervisor run).
        tool: The tool's name.
        worker_id: The worker process running the call, for example ``"trio-0"``.
        runtime: ``"asyncio"`` or ``"trio"``.
        deadline: ``time.monotonic()`` value after which the call is cancelled, or ``None``.
        progress_token: The client's progress token, or ``None`` when it asked for no progress.
        meta: The ``_meta`` object of the client's request, or ``None``.
    """

    __slots__ = (
        "call_id",
        "tool",
        "worker_id",
        "runtime",
        "deadline",
        "progress_token",
        "meta",
        "_emit",
        "_request",
        "_announce",
        "_cancelled",
        "_inputs",
    )

    def __init__(
        self,
        *,
        call_id: int,
        tool: str,
        worker_id: str,
        runtime: str,
        deadline: float | None,
        progress_token: str | int | None,
        meta: dict[str, Any] | None,
        emit: Callable[[Message], None],
        request: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
        announce: Callable[[], None] | None = None,
    ) -> None:
        self.call_id = call_id
        self.tool = tool
        self.worker_id = worker_id
        self.runtime = runtime
        self.deadline = deadline
        self.progress_token = progress_token
        self.meta = meta
        self._emit = emit
        self._request = request
        self._announce = announce
        self._cancelled = False  # a plain flag: set once by the loop thread, read by any (atomic in CPython)
        self._inputs = 0  # requests to the client so far: their default keys

    @property
    def cancelled(self) -> bool:
        """True once the call was cancelled or timed out; a sync tool should check it and return early.

        An async tool is cancelled by its event loop and does not need to look.
        """
        return self._cancelled

    @property
    def principal(self) -> Principal | None:
        """The authenticated caller (subject, scopes, claims), or ``None`` when the server runs without
        authorization (``auth = "none"``) or the call came from stdio."""
        return Principal.from_meta(self.meta.get(PRINCIPAL_META)) if self.meta else None

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or ``None`` without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> Sent:
        """Send ``notifications/progress`` to the client, if it asked for progress; never blocks.

        Raises:
            TypeError: ``progress`` or ``total`` is not a number.
        """
        if not isinstance(progress, (int, float)) or (
            total is not None and not isinstance(total, (int, float))
        ):
            raise TypeError("report_progress: progress and total must be numbers")
        if self.progress_token is not None and not self._cancelled:
            self._emit(
                Progress(self.call_id, float(progress), None if total is None else float(total), message)
            )
        return _SENT

    def log(self, level: str, data: Any, logger: str | None = None) -> Sent:
        """Send ``notifications/message`` to the client at ``level`` (an MCP log level); never blocks.

        Raises:
            ValueError: ``level`` is not one of ``LOG_LEVELS``.
        """
        if level not in LOG_LEVELS:
            raise ValueError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")
        if not self._cancelled:
            self._emit(Log(self.call_id, level, logger, data))
        return _SENT

    def resource_updated(self, uri: str) -> Sent:
        """Tell every client session subscribed to ``uri`` that the resource changed
        (``notifications/resources/updated``); never blocks, and works after the call ended too.

        Raises:
            TypeError: ``uri`` is not a non-empty string.
        """
        if not isinstance(uri, str) or not uri:
            raise TypeError("resource_updated: uri must be a non-empty string")
        self._emit(ResourceUpdated(uri))
        return _SENT

    def announce_catalog(self) -> Sent:
        """Announce this worker's entries again: tools, resources, prompts or completions registered
        (decorated) since the worker started become callable and listed, and clients are told that the
        lists changed (``list_changed``). Never blocks.

        Raises:
            RuntimeError: the context has no worker behind it (a test's hand-made context).
        """
        if self._announce is None:
            raise RuntimeError("announce_catalog: this context is not running in a worker")
        self._announce()
        return _SENT

    async def sample(
        self,
        messages: str | list[dict[str, Any]],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        temperature: float | None = None,
        stop_sequences: list[str] | None = None,
        model_preferences: dict[str, Any] | None = None,
        include_context: str | None = None,
        metadata: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Ask the client's LLM for a completion (``sampling/createMessage``) and return its result.

        ``messages`` is a prompt string (one user text message) or MCP ``SamplingMessage`` objects as
        dicts. The result is the client's ``CreateMessageResult`` as a dict (``role``, ``content``,
        ``model``, ``stopReason``). ``key`` names the request in an ``input_required`` result.

        Raises:
            InputRequired: 2026-07-28, no answer yet; let it propagate (the call is run again with it).
            ClientRequestError: the client does not support sampling, or answered with an error.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": {"type": "text", "text": messages}}]
        params: dict[str, Any] = {"messages": messages, "maxTokens": max_tokens}
        optional = {
            "systemPrompt": system_prompt,
            "temperature": temperature,
            "stopSequences": stop_sequences,
            "modelPreferences": model_preferences,
            "includeContext": include_context,
            "metadata": metadata,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        return await self._ask_client("sampling/createMessage", params, key, "sample")

    async def elicit(
        self, message: str, requested_schema: dict[str, Any], *, key: str | None = None
    ) -> dict[str, Any]:
        """Ask the user for structured input (``elicitation/create``, form mode) and return the answer.

        ``requested_schema`` is a flat JSON object schema of primitive properties (strings, numbers,
        booleans, enums), as the MCP specification restricts it. The result is the client's
        ``ElicitResult`` as a dict: ``action`` (``accept``, ``decline`` or ``cancel``) and, on accept,
        ``content``. ``key`` names the request in an ``input_required`` result.

        Raises:
            InputRequired: 2026-07-28, no answer yet; let it propagate (the call is run again with it).
            ClientRequestError: the client does not support elicitation, or answered with an error.
        """
        params = {"mode": "form", "message": message, "requestedSchema": requested_schema}
        return await self._ask_client("elicitation/create", params, key, "elicit")

    async def list_roots(self, *, key: str | None = None) -> dict[str, Any]:
        """Ask the client for its roots (``roots/list``) and return its ``ListRootsResult`` as a dict
        (``roots``: objects with ``uri`` and an optional ``name``). ``key`` names the request in an
        ``input_required`` result.

        Raises:
            InputRequired: 2026-07-28, no answer yet; let it propagate (the call is run again with it).
            ClientRequestError: the client does not support roots, or answered with an error.
        """
        return await self._ask_client("roots/list", {}, key, "roots")

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call another tool, in any runtime, through the router; returns its ``CallToolResult`` as a dict.

        The callee gets what is left of this call's deadline. Whatever goes wrong while running it — a
        tool error, no worker, a busy server, its worker dying, a timeout — comes back as a result with
        ``isError: true``, as for any client.

        Raises:
            ClientRequestError: no tool of that name, or invalid arguments (code -32602).
        """
        params: dict[str, Any] = {
            "name": name,
            "arguments": arguments or {},
            "timeout": self.time_remaining(),
        }
        return await self._send_request("tools/call", params)

    async def run_as_task(self) -> None:
        """Become an MCP task here (a tool declared with ``task_after_input=True``).

        In a plain call from a client that declared the tasks extension, the call ends here: the server
        records a durable task holding the tool's arguments and the answers the client gave so far, and
        answers with its ``CreateTaskResult``; the task then runs the function again from the start, where
        the earlier requests to the client are answered at once and this returns. In a task, or for a
        client without the extension (``task_support="optional"``), it returns at once.

        Raises:
            InputRequired: the call becomes a task; let it propagate (whatever the function does after
                catching it is done for nothing).
        """
        await self._send_request(START_TASK_METHOD, {})

    async def _ask_client(
        self, method: str, params: dict[str, Any], key: str | None, kind: str
    ) -> dict[str, Any]:
        """A request to the client, carrying its key (given, or ``<kind>-<n>``) in ``_meta``."""
        self._inputs += 1
        params["_meta"] = {INPUT_KEY_META: key if key is not None else f"{kind}-{self._inputs}"}
        return await self._send_request(method, params)

    async def _send_request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if self._request is None:
            raise ClientRequestError(f"{method} is not available in this context")
        return await self._request(method, params)

    def mark_cancelled(self) -> None:
        """Called by the worker when the call is cancelled or timed out; idempotent."""
        self._cancelled = True
