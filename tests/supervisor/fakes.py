"""Fakes for the router's unit tests: its socket in memory and workers that are only frames.

``FakeSocket`` is what ``Router(open_socket=...)`` gets: the router's sends are decoded and kept, and a
test delivers a worker's frames with ``FakeWorker``. No ZeroMQ socket and no process is involved.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import zmq

from shared.protocol import PROTOCOL_VERSION, Call, Message, Ready, Result, decode, encode
from supervisor.router import Router

M = TypeVar("M")

WAIT = 5.0
"""Longest a test waits for the router to send something before it fails."""


def tool_entry(name: str, **metadata: Any) -> dict[str, Any]:
    """A catalog entry as a worker announces it; ``metadata`` are ``ToolMetadata`` fields."""
    return {
        "name": name,
        "inputSchema": {"type": "object", "properties": {}},
        "metadata": {"name": name, **metadata},
    }


class FakeSocket:
    """The router's socket in memory (``FrameSocket``)."""

    def __init__(self, on_frames: Callable[[list[bytes]], None]) -> None:
        self.on_frames = on_frames
        self.sent: list[tuple[bytes, Message]] = []
        """Every message the router sent, in order: (worker identity, message)."""
        self.unread: list[tuple[bytes, Message]] = []
        self.gone: set[bytes] = set()
        """Peers a send to fails, as a ROUTER_MANDATORY socket fails for a peer that disconnected."""
        self.closed = False
        self._changed = asyncio.Event()

    def send(self, frames: list[bytes]) -> None:
        identity, frame = frames
        if identity in self.gone:
            raise zmq.ZMQError(errno.EHOSTUNREACH)
        message = decode(frame)
        self.sent.append((identity, message))
        self.unread.append((identity, message))
        self._changed.set()

    def close(self) -> None:
        self.closed = True

    def deliver(self, identity: bytes, message: Message) -> None:
        """A worker's frame arrives."""
        self.on_frames([identity, encode(message)])

    def sent_to(self, identity: bytes, kind: type[M]) -> list[M]:
        return [message for peer, message in self.sent if peer == identity and isinstance(message, kind)]

    async def next(self, kind: type[M], identity: bytes | None = None) -> M:
        """The first unread message of type ``kind`` (to ``identity``), waiting for it to be sent."""
        async with asyncio.timeout(WAIT):
            while True:
                for index, (peer, message) in enumerate(self.unread):
                    if isinstance(message, kind) and identity in (None, peer):
                        del self.unread[index]
                        return message
                self._changed.clear()
                await self._changed.wait()


class FakeWorker:
    """One worker incarnation, as frames on a ``FakeSocket``."""

    def __init__(
        self,
        socket: FakeSocket,
        worker_id: str,
        pid: int,
        pool: str,
        catalog: list[dict[str, Any]],
        elsewhere: dict[str, str] | None = None,
    ) -> None:
        self.socket = socket
        self.worker_id = worker_id
        self.pid = pid
        self.pool = pool
        self.catalog = catalog
        self.elsewhere = elsewhere or {}
        self.identity = f"{worker_id}/{pid}".encode()

    def ready_message(self, **changes: Any) -> Ready:
        ready = Ready(
            worker_id=self.worker_id,
            pid=self.pid,
            pool=self.pool,
            protocol_version=PROTOCOL_VERSION,
            catalog=self.catalog,
            load_errors=[],
            elsewhere=self.elsewhere,
        )
        return ready._replace(**changes)

    def ready(self, **changes: Any) -> None:
        self.socket.deliver(self.identity, self.ready_message(**changes))

    def send(self, message: Message) -> None:
        self.socket.deliver(self.identity, message)

    async def next(self, kind: type[M]) -> M:
        return await self.socket.next(kind, self.identity)

    async def next_call(self) -> Call:
        return await self.next(Call)

    def answer(self, call: Call, text: str = "done") -> None:
        self.send(Result(call.call_id, {"content": [{"type": "text", "text": text}], "isError": False}))


@asynccontextmanager
async def running_router(pools: list[str], **options: Any) -> AsyncIterator[tuple[Router, FakeSocket]]:
    """A started ``Router`` on a ``FakeSocket`` (heartbeats every hour unless ``heartbeat_interval``)."""
    sockets: list[FakeSocket] = []

    def open_socket(on_frames: Callable[[list[bytes]], None]) -> FakeSocket:
        sockets.append(FakeSocket(on_frames))
        return sockets[-1]

    options.setdefault("heartbeat_interval", 3600.0)
    router = Router(
        "inproc://unused", pools=pools, max_message_size=1 << 20, open_socket=open_socket, **options
    )
    await router.start()
    try:
        yield router, sockets[0]
    finally:
        await router.aclose()


def connect(
    router: Router, socket: FakeSocket, worker_id: str, pid: int, pool: str, *tools: str, **metadata: Any
) -> FakeWorker:
    """A worker the arbiter announced and that sent READY with ``tools`` (each with ``metadata``)."""
    worker = FakeWorker(socket, worker_id, pid, pool, [tool_entry(name, **metadata) for name in tools])
    router.expect(worker_id, pid)
    worker.ready()
    return worker
