"""``ToolContext``: what a running tool may ask of the server.

A tool gets one by annotating a parameter with ``ToolContext``; the parameter is injected by the worker and
is not part of the tool's input schema. The same class serves both runtimes and both kinds of function:
``report_progress`` and ``log`` never block and are safe to call from a sync tool running in the worker's
thread pool. They return an already-completed awaitable, so ``await ctx.report_progress(...)`` (the usual
MCP SDK spelling) and a plain ``ctx.report_progress(...)`` both work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from .protocol import Log, Message, Progress

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
        "_cancelled",
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
    ) -> None:
        self.call_id = call_id
        self.tool = tool
        self.worker_id = worker_id
        self.runtime = runtime
        self.deadline = deadline
        self.progress_token = progress_token
        self.meta = meta
        self._emit = emit
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once the call was cancelled or timed out; a sync tool should check it and return early.

        An async tool is cancelled by its event loop and does not need to look.
        """
        return self._cancelled.is_set()

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
        if self.progress_token is not None and not self._cancelled.is_set():
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
        if not self._cancelled.is_set():
            self._emit(Log(self.call_id, level, logger, data))
        return _SENT

    def mark_cancelled(self) -> None:
        """Called by the worker when the call is cancelled or timed out; idempotent."""
        self._cancelled.set()
