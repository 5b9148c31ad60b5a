"""The seam between the engine and the supervisor: how a task's tool call is made.

The queue worker process supplies an ``Executor`` that calls tools of other workers through the router;
tests supply an in-memory one. The engine never talks to ZeroMQ itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

ProgressCallback = Callable[[float, float | None, str | None], None]
"""``on_progress(progress, total, message)``: called on the engine's Trio thread, must not block."""


class ToolCallRefused(Exception):
    """The router refused the call before it ran: unknown tool, invalid arguments.

    The message is one line; ``code`` is the JSON-RPC error code (-32602 for both cases above) and ``data``
    the error's ``data`` (or None). A refused call is not retried by the engine: the same call would be
    refused again. A protocol task it refuses fails with ``{"code", "message"(, "data")}``.
    """

    def __init__(self, message: str, code: int = -32602, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class Executor(Protocol):
    """Runs tools on the supervisor's worker processes and describes them."""

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None,
        on_progress: ProgressCallback,
        task_input: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run a tool through the router; returns its CallToolResult as a dict (content, structuredContent?,
        isError).

        Tool failures, worker deaths, timeouts and a busy server come back as ``isError`` results.

        ``task_input`` is given for a run of a protocol task: ``{"client": {"capabilities",
        "protocolVersion"}, "answers": {key: {"q", "r"}}}``. Such a run may also answer
        ``{"resultType": "input_required", "inputRequests": {key: request}, "asked": {key: digest}}``:
        the tool asked the client for input, and runs again from the start once it is answered.

        Raises:
            ToolCallRefused: unknown tool or invalid arguments; the tool did not run.

        Cancellation: Trio cancellation of the caller cancels the call in its worker (the router is told).
        """
        ...

    async def tools(self) -> dict[str, dict[str, Any]]:
        """The catalog: tool name -> {"name", "inputSchema", "runtime", "metadata": {...}, ...}."""
        ...

    async def workers(self) -> list[dict[str, Any]]:
        """The live worker processes: [{"id", "runtime", "pid", "state", "tools": [names], "in_flight": int}]."""
        ...
