"""Drivers and socket pairs for the tests of ``shared/zmqio``: every case runs on both shims.

A ``Driver`` runs a test's ``main`` coroutine in a fresh loop of its runtime (``asyncio.run`` or
``trio.run``) under a deadline, wraps a raw socket in that runtime's shim and gives the few loop
primitives the cases need (spawn, checkpoint, wait for an fd, an event). Every endpoint is inproc:// or
ipc:// in the test's tmp_path; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
import trio
import trio.testing
import zmq

from shared.zmqio.asyncio_socket import AsyncioZmqSocket
from shared.zmqio.core import MessageHandler, Receiver, ZmqSocketCore
from shared.zmqio.trio_socket import TrioZmqSocket

IDENTITY = b"worker-1"
DEADLINE = 10.0
_inproc_names = itertools.count()


class Event(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    async def wait(self) -> Any: ...


class Driver(ABC):
    """One runtime's way to run a case; a case uses only these, so it runs unchanged on both."""

    name: str

    def __init__(self) -> None:
        self.wrapped: list[ZmqSocketCore] = []

    @abstractmethod
    def run(self, main: Callable[[], Awaitable[None]]) -> None:
        """Run ``main`` in a fresh loop, failing after DEADLINE; every wrapped socket is closed when ``main``
        returns (so pumps end) and the run waits for the tasks ``spawn`` started."""

    @abstractmethod
    def wrap(
        self,
        socket: zmq.Socket[bytes],
        on_message: MessageHandler,
        *,
        multipart: bool,
        receive: Receiver | None = None,
    ) -> ZmqSocketCore:
        """This runtime's shim around ``socket``, not receiving yet."""

    @abstractmethod
    def start(self, wrapped: ZmqSocketCore) -> None:
        """Start receiving (asyncio: ``start()``; Trio: a task running ``pump``)."""

    @abstractmethod
    def receiving(self, wrapped: ZmqSocketCore) -> bool:
        """Whether the shim still watches its socket (asyncio: its reader; Trio: its pump task)."""

    @abstractmethod
    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None: ...

    @abstractmethod
    async def checkpoint(self) -> None:
        """Let the loop's other work run."""

    @abstractmethod
    async def settle(self, wrapped: ZmqSocketCore) -> None:
        """Return once the pump has nothing to do: it waits for its fd."""

    @abstractmethod
    async def wait_readable(self, fd: int) -> None: ...

    @abstractmethod
    def event(self) -> Event: ...

    def close_all(self) -> None:
        for wrapped in self.wrapped:
            wrapped.close()


class AsyncioDriver(Driver):
    name = "asyncio"

    def run(self, main: Callable[[], Awaitable[None]]) -> None:
        async def wrapper() -> None:
            async with asyncio.timeout(DEADLINE):
                try:
                    async with asyncio.TaskGroup() as tasks:
                        self._tasks = tasks
                        await main()
                        self.close_all()
                finally:
                    self.close_all()

        asyncio.run(wrapper())

    def wrap(
        self,
        socket: zmq.Socket[bytes],
        on_message: MessageHandler,
        *,
        multipart: bool,
        receive: Receiver | None = None,
    ) -> ZmqSocketCore:
        wrapped = AsyncioZmqSocket(socket, on_message, multipart=multipart, receive=receive)
        self.wrapped.append(wrapped)
        return wrapped

    def start(self, wrapped: ZmqSocketCore) -> None:
        cast(AsyncioZmqSocket, wrapped).start()

    def receiving(self, wrapped: ZmqSocketCore) -> bool:
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        return wrapped._fd in selector.get_map()

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        async def task() -> None:
            await fn()

        self._tasks.create_task(task())

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def settle(self, wrapped: ZmqSocketCore) -> None:
        await asyncio.sleep(0)
        while cast(AsyncioZmqSocket, wrapped)._drain_scheduled:
            await asyncio.sleep(0)

    async def wait_readable(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(fd)

    def event(self) -> Event:
        return asyncio.Event()


class TrioDriver(Driver):
    name = "trio"

    def __init__(self) -> None:
        super().__init__()
        self._pumping: set[ZmqSocketCore] = set()
        self._handlers: dict[ZmqSocketCore, MessageHandler] = {}

    def run(self, main: Callable[[], Awaitable[None]]) -> None:
        async def wrapper() -> None:
            with trio.fail_after(DEADLINE):
                try:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        await main()
                        self.close_all()
                finally:
                    self.close_all()

        trio.run(wrapper)

    def wrap(
        self,
        socket: zmq.Socket[bytes],
        on_message: MessageHandler,
        *,
        multipart: bool,
        receive: Receiver | None = None,
    ) -> ZmqSocketCore:
        wrapped = TrioZmqSocket(socket, multipart=multipart, receive=receive)
        self.wrapped.append(wrapped)
        self._handlers[wrapped] = on_message
        return wrapped

    def start(self, wrapped: ZmqSocketCore) -> None:
        async def pump() -> None:
            try:
                await cast(TrioZmqSocket, wrapped).pump(self._handlers[wrapped])
            finally:
                self._pumping.discard(wrapped)

        self._pumping.add(wrapped)
        self._nursery.start_soon(pump)

    def receiving(self, wrapped: ZmqSocketCore) -> bool:
        return wrapped in self._pumping

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._nursery.start_soon(fn)

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def settle(self, wrapped: ZmqSocketCore) -> None:
        await trio.testing.wait_all_tasks_blocked()

    async def wait_readable(self, fd: int) -> None:
        await trio.lowlevel.wait_readable(fd)

    def event(self) -> Event:
        return trio.Event()


@pytest.fixture(params=[AsyncioDriver, TrioDriver], ids=["asyncio", "trio"])
def driver(request: pytest.FixtureRequest) -> Driver:
    return cast(Driver, request.param())


@pytest.fixture(params=["inproc", "ipc"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "inproc":
        return f"inproc://zmqio-test-{next(_inproc_names)}"
    return f"ipc://{tmp_path}/router"


def events(socket: zmq.Socket[bytes]) -> int:
    return cast(int, socket.getsockopt(zmq.EVENTS))


def fd_of(socket: zmq.Socket[bytes]) -> int:
    return cast(int, socket.getsockopt(zmq.FD))


class Inbox:
    """A handler that keeps what it is given, and a way to wait for the next item."""

    def __init__(self, driver: Driver) -> None:
        self.items: deque[list[bytes]] = deque()
        self._driver = driver
        self._arrived = driver.event()

    def __call__(self, message: list[bytes]) -> None:
        self.items.append(message)
        self._arrived.set()

    async def get(self) -> list[bytes]:
        while not self.items:
            self._arrived = self._driver.event()
            await self._arrived.wait()
        return self.items.popleft()


class Peer:
    """The test's side, a plain non-blocking socket on the same loop: a ROUTER that talks to the one DEALER
    whose identity is IDENTITY (``routed=True``), or a DEALER talking to a wrapped ROUTER."""

    def __init__(self, socket: zmq.Socket[bytes], driver: Driver, *, routed: bool) -> None:
        self.socket = socket
        self.fd = fd_of(socket)
        self._driver = driver
        self._prefix = [IDENTITY] if routed else []

    def send(self, *frames: bytes) -> None:
        """Send now; a ROUTER_MANDATORY peer raises on a message that cannot be queued instead of losing it."""
        self.socket.send_multipart([*self._prefix, *frames], zmq.NOBLOCK)

    def try_recv(self) -> list[bytes] | None:
        try:
            frames = self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if self._prefix:
            assert frames[0] == IDENTITY
            return frames[1:]
        return frames

    async def recv(self) -> list[bytes]:
        """Wait for one message: the textbook ZMQ_FD loop (try, check ZMQ_EVENTS, then wait for the FD)."""
        while True:
            frames = self.try_recv()
            if frames is not None:
                return frames
            if not events(self.socket) & zmq.POLLIN:
                await self._driver.wait_readable(self.fd)

    async def recv_frame(self) -> bytes:
        [frame] = await self.recv()
        return frame


Pair = tuple[ZmqSocketCore, Peer, "zmq.Socket[bytes]"]
MakePair = Callable[..., Pair]


@pytest.fixture
def make_pair(driver: Driver, endpoint: str) -> Iterator[MakePair]:
    """``make_pair(on_message, *, hwm=None, multipart=False, wrap_router=False, receive=None)``: a connected pair, the wrapped
    socket (the driver's shim, not receiving yet), the test's ``Peer`` and the wrapped raw socket.

    By default the wrapped side is a DEALER of identity IDENTITY (as in a worker) and the peer a ROUTER with
    ``ROUTER_MANDATORY``; ``wrap_router=True`` swaps them (as in the supervisor). ``hwm`` limits the wrapped
    side's sending direction; the other direction holds 100,000 messages. Every socket and the context are
    closed when the test ends."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sockets: list[zmq.Socket[bytes]] = []

    def factory(
        on_message: MessageHandler,
        *,
        hwm: int | None = None,
        multipart: bool = False,
        wrap_router: bool = False,
        receive: Receiver | None = None,
    ) -> Pair:
        router = context.socket(zmq.ROUTER)
        dealer = context.socket(zmq.DEALER)
        sockets.extend([router, dealer])
        for socket in (router, dealer):
            socket.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        dealer.setsockopt(zmq.IDENTITY, IDENTITY)
        wrapped_raw, peer_raw = (router, dealer) if wrap_router else (dealer, router)
        peer_raw.setsockopt(zmq.SNDHWM, 100_000)
        wrapped_raw.setsockopt(zmq.RCVHWM, 100_000)
        if hwm is not None:
            wrapped_raw.setsockopt(zmq.SNDHWM, hwm)
            peer_raw.setsockopt(zmq.RCVHWM, hwm)
        router.bind(endpoint)
        dealer.connect(endpoint)
        wrapped = driver.wrap(wrapped_raw, on_message, multipart=multipart, receive=receive)
        return wrapped, Peer(peer_raw, driver, routed=not wrap_router), wrapped_raw

    yield factory
    for socket in sockets:
        socket.close(linger=0)
    context.term()


async def introduce(wrapped: ZmqSocketCore, peer: Peer) -> None:
    """A ROUTER can address the DEALER only once it has heard from it."""
    wrapped.send([b"hello"])
    assert await peer.recv_frame() == b"hello"


async def until_writable(driver: Driver, socket: zmq.Socket[bytes]) -> None:
    """Wait until ``socket`` can take a message (used before a pump runs, to start from a known state)."""
    fd = fd_of(socket)
    while not events(socket) & zmq.POLLOUT:
        await driver.wait_readable(fd)
