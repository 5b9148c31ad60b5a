"""The types the router and its parts share: the callbacks of a call, the router's socket seam (with the
real socket's opener), and what the arbiter asks of a router (``WorkerRouter``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import zmq

from shared.zmqio.asyncio_socket import AsyncioZmqSocket

from .links import WorkerLink
from .recent_errors import RecentErrors

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
"""Takes a call's progress report: ``(progress, total, message)``."""
LogCallback = Callable[[str, Any, str | None], Awaitable[None]]
"""Takes a log message a tool sent its client: ``(level, data, logger)``."""
RequestCallback = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers a request a tool made of the client (``sampling/createMessage``, ``elicitation/create``)."""


class ToolCaller(Protocol):
    """What the calls a worker asks for run on (tool-to-tool calls, the task queue's runs): the router."""

    request_timeout: float

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any] | None,
        *,
        timeout: float,
        progress_token: str | int | None = None,
        meta: dict[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
        on_request: RequestCallback | None = None,
    ) -> dict[str, Any]: ...


class WorkerRouter(Protocol):
    """What the arbiter (and its spares and drains) asks of the router its workers connect to: the
    supervisor's ``Router``, or a node's ``NodeRouter``. Every pid is a process of this host."""

    @property
    def endpoint(self) -> str:
        """The ZeroMQ endpoint the workers connect to (``--router``)."""

    def expect(self, worker_id: str, pid: int, *, held: bool = False) -> None: ...
    def promote(self, pid: int) -> None: ...
    def worker_gone(self, pid: int, reason: str, *, death: bool = False) -> bool:
        """Process ``pid`` exited (``death``: not asked to); True when it held tool calls."""

    @property
    def recent_errors(self) -> RecentErrors:
        """Where the arbiter notes a worker that ended without being asked to."""

    def set_pool_failed(self, pool: str, reason: str | None) -> None: ...
    def drain(self, pid: int) -> None: ...
    def stop(self, pid: int, reason: str) -> None: ...
    def links(self) -> list[WorkerLink]: ...
    def link_of(self, pid: int) -> WorkerLink | None: ...


class FrameSocket(Protocol):
    """The router's socket: a bound ROUTER (``AsyncioZmqSocket``) or a test's fake. ``send`` queues one
    message, ``[identity, frame]``, without blocking, and raises ``zmq.ZMQError`` for a peer that is gone
    (``ROUTER_MANDATORY``); ``close`` stops receiving and closes, and is idempotent."""

    def send(self, frames: list[bytes]) -> None: ...

    def close(self) -> None: ...


SocketOpener = Callable[[Callable[[list[bytes]], None]], FrameSocket]
"""Opens the router's socket, already receiving: each message received (its frames) is handed to the
function given, synchronously, in arrival order."""


def open_zmq_router(
    context: zmq.Context[zmq.Socket[bytes]],
    endpoint: str,
    max_message_size: int,
    on_frames: Callable[[list[bytes]], None],
) -> FrameSocket:
    """The router's real socket: a ROUTER of ``context`` bound at ``endpoint``, already receiving."""
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.MAXMSGSIZE, max_message_size)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
    socket.setsockopt(zmq.SNDHWM, 100_000)
    socket.setsockopt(zmq.RCVHWM, 100_000)
    socket.bind(endpoint)
    adapter = AsyncioZmqSocket(socket, on_frames)
    adapter.start()
    return adapter
