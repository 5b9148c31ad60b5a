"""Tests of trio_worker/zmq_io.py: TrioZmqSocket against a real ZeroMQ socket pair.

The wrapped side is a DEALER, as in the Trio worker; the peer is a plain non-blocking ROUTER driven by the
test in the same Trio loop. Every endpoint is inproc:// or ipc:// in the test's tmp_path. Waits are bounded
by ``trio.fail_after``; nothing sleeps to synchronise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
import trio
import trio.testing
import zmq

from trio_worker.zmq_io import TrioZmqSocket

IDENTITY = b"worker-1"
DEADLINE = 10.0
_inproc_names = itertools.count()


def events(socket: zmq.Socket[bytes]) -> int:
    return cast(int, socket.getsockopt(zmq.EVENTS))


def fd_of(socket: zmq.Socket[bytes]) -> int:
    return cast(int, socket.getsockopt(zmq.FD))


class Peer:
    """The test's side: a non-blocking ROUTER that talks to the one DEALER whose identity is IDENTITY."""

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self.fd = fd_of(socket)

    def send(self, frame: bytes) -> None:
        """Send now; ``ROUTER_MANDATORY`` makes a frame that cannot be queued raise instead of vanishing."""
        self.socket.send_multipart([IDENTITY, frame], zmq.NOBLOCK)

    def try_recv(self) -> bytes | None:
        try:
            identity, frame = self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        assert identity == IDENTITY
        return frame

    async def recv(self) -> bytes:
        """Wait for one frame: the textbook ZMQ_FD loop (try, check ZMQ_EVENTS, then wait for the FD)."""
        while True:
            frame = self.try_recv()
            if frame is not None:
                return frame
            if not events(self.socket) & zmq.POLLIN:
                await trio.lowlevel.wait_readable(self.fd)


@pytest.fixture(params=["inproc", "ipc"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "inproc":
        return f"inproc://zmq-io-test-{next(_inproc_names)}"
    return f"ipc://{tmp_path}/router"


Pair = tuple[TrioZmqSocket, Peer, "zmq.Socket[bytes]"]


@pytest.fixture
def make_pair(endpoint: str) -> Iterator[Callable[..., Pair]]:
    """``make_pair(hwm=None)``: a bound peer ROUTER and a connected DEALER wrapped in TrioZmqSocket (plus
    the raw DEALER). Every socket and the context are closed when the test ends."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sockets: list[zmq.Socket[bytes]] = []

    def factory(hwm: int | None = None) -> Pair:
        router = context.socket(zmq.ROUTER)
        dealer = context.socket(zmq.DEALER)
        sockets.extend([router, dealer])
        for socket in (router, dealer):
            socket.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        dealer.setsockopt(zmq.IDENTITY, IDENTITY)
        if hwm is not None:
            router.setsockopt(zmq.RCVHWM, hwm)
            dealer.setsockopt(zmq.SNDHWM, hwm)
        router.bind(endpoint)
        dealer.connect(endpoint)
        return TrioZmqSocket(dealer), Peer(router), dealer

    yield factory
    for socket in sockets:
        socket.close(linger=0)
    context.term()


async def introduce(wrapped: TrioZmqSocket, peer: Peer) -> None:
    """The ROUTER can address the DEALER only once it has heard from it."""
    wrapped.send(b"hello")
    assert await peer.recv() == b"hello"


async def until_writable(socket: zmq.Socket[bytes]) -> None:
    """Wait until ``socket`` can take a frame (used before a pump runs, to start from a known state)."""
    fd = fd_of(socket)
    while not events(socket) & zmq.POLLOUT:
        await trio.lowlevel.wait_readable(fd)


def run(
    make_pair: Callable[..., Pair],
    body: Callable[[TrioZmqSocket, Peer, trio.Nursery], Awaitable[None]],
    hwm: int | None = None,
) -> None:
    """Run ``body`` in a fresh Trio loop with a connected pair; close the wrapped socket at the end."""

    async def main() -> None:
        wrapped, peer, _ = make_pair(hwm)
        try:
            with trio.fail_after(DEADLINE):
                async with trio.open_nursery() as nursery:
                    await body(wrapped, peer, nursery)
                    wrapped.close()
        finally:
            wrapped.close()

    trio.run(main)


# -- (a) the pump delivers frames in order ---------------------------------------------------------


def test_pump_delivers_frames_in_order(make_pair: Callable[..., Pair]) -> None:
    count = 500
    received: list[bytes] = []
    all_received = trio.Event()

    def on_frame(frame: bytes) -> None:
        received.append(frame)
        if len(received) == count:
            all_received.set()

    async def body(wrapped: TrioZmqSocket, peer: Peer, nursery: trio.Nursery) -> None:
        await introduce(wrapped, peer)
        for n in range(count // 2):  # some wait in the socket before the pump starts...
            peer.send(b"%d" % n)
        nursery.start_soon(wrapped.pump, on_frame)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(count // 2, count):  # ...and some arrive while it waits on the FD
            peer.send(b"%d" % n)
        await all_received.wait()

    run(make_pair, body)

    assert received == [b"%d" % n for n in range(count)]


def test_pump_returns_when_closed_while_waiting(make_pair: Callable[..., Pair]) -> None:
    async def main() -> None:
        wrapped, _, dealer = make_pair()
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wrapped.pump, lambda frame: None)
                await trio.testing.wait_all_tasks_blocked()
                wrapped.close()
        assert dealer.closed

    trio.run(main)


def test_closing_from_on_frame_stops_the_pump_at_once(make_pair: Callable[..., Pair]) -> None:
    received: list[bytes] = []

    async def body(wrapped: TrioZmqSocket, peer: Peer, nursery: trio.Nursery) -> None:
        await introduce(wrapped, peer)
        for frame in (b"first", b"stop", b"never"):
            peer.send(frame)

        def on_frame(frame: bytes) -> None:
            received.append(frame)
            if frame == b"stop":
                wrapped.close()

        await wrapped.pump(on_frame)

    run(make_pair, body)

    assert received == [b"first", b"stop"]


# -- (b) sends from several tasks keep each task's order -------------------------------------------


def test_sends_from_several_tasks_arrive_in_order_per_task(make_pair: Callable[..., Pair]) -> None:
    tasks, per_task = 6, 400
    received: list[bytes] = []

    async def body(wrapped: TrioZmqSocket, peer: Peer, nursery: trio.Nursery) -> None:
        await introduce(wrapped, peer)
        nursery.start_soon(wrapped.pump, lambda frame: None)

        async def sender(task: int) -> None:
            for n in range(per_task):
                wrapped.send(b"%d:%d" % (task, n))
                await trio.lowlevel.checkpoint()  # let the other senders in between

        async with trio.open_nursery() as senders:
            for task in range(tasks):
                senders.start_soon(sender, task)
            for _ in range(tasks * per_task):
                received.append(await peer.recv())

    run(make_pair, body)

    assert len(received) == tasks * per_task
    by_task: dict[int, list[int]] = {}
    for frame in received:
        task, n = map(int, frame.split(b":"))
        by_task.setdefault(task, []).append(n)
    assert by_task == {task: list(range(per_task)) for task in range(tasks)}


# -- (c) an incoming frame is not lost when a send consumes the FD's edge --------------------------


def test_reply_arriving_while_another_task_sends_is_not_lost(make_pair: Callable[..., Pair]) -> None:
    """ZMQ_FD is edge-triggered: a send can swallow the edge that announced a reply.

    Each round parks the pump on the FD, lets the peer send a reply, and sends a request from the test's
    task before the pump runs again; every reply must still reach the pump before the deadline.
    """
    rounds = 2000
    replies, receive_reply = trio.open_memory_channel[bytes](math.inf)

    async def body(wrapped: TrioZmqSocket, peer: Peer, nursery: trio.Nursery) -> None:
        await introduce(wrapped, peer)
        nursery.start_soon(wrapped.pump, replies.send_nowait)
        for n in range(rounds):
            await trio.testing.wait_all_tasks_blocked()  # the pump waits on the FD
            peer.send(b"reply %d" % n)
            wrapped.send(b"request %d" % n)
            assert await receive_reply.receive() == b"reply %d" % n
            assert await peer.recv() == b"request %d" % n

    run(make_pair, body)


def test_request_reply_traffic_in_both_directions_loses_nothing(make_pair: Callable[..., Pair]) -> None:
    """Several requests in flight: replies keep arriving while the wrapped side keeps sending."""
    total, window = 2000, 16
    replies: list[bytes] = []
    done = trio.Event()

    async def body(wrapped: TrioZmqSocket, peer: Peer, nursery: trio.Nursery) -> None:
        await introduce(wrapped, peer)
        sent = 0

        def on_reply(frame: bytes) -> None:
            nonlocal sent
            replies.append(frame)
            if sent < total:
                wrapped.send(b"%d" % sent)
                sent += 1
            if len(replies) == total:
                done.set()

        nursery.start_soon(wrapped.pump, on_reply)
        for _ in range(window):
            wrapped.send(b"%d" % sent)
            sent += 1

        async def echo() -> None:
            for _ in range(total):
                peer.send(b"re:" + await peer.recv())

        nursery.start_soon(echo)
        await done.wait()

    run(make_pair, body)

    assert replies == [b"re:%d" % n for n in range(total)]


# -- (d) closing -----------------------------------------------------------------------------------


def test_close_is_idempotent_and_send_after_close_raises(make_pair: Callable[..., Pair]) -> None:
    wrapped, _, dealer = make_pair()

    wrapped.close()
    wrapped.close()

    assert dealer.closed
    with pytest.raises(trio.ClosedResourceError):
        wrapped.send(b"too late")


def test_pump_after_close_returns_at_once(make_pair: Callable[..., Pair]) -> None:
    wrapped, _, _ = make_pair()
    wrapped.close()

    async def main() -> None:
        with trio.fail_after(DEADLINE):
            await wrapped.pump(lambda frame: pytest.fail("no frame expected"))

    trio.run(main)


# -- (e) the outbox keeps the order when the high-water mark is reached ----------------------------


def test_outbox_keeps_order_past_the_high_water_mark(make_pair: Callable[..., Pair]) -> None:
    count, padding = 2000, b"." * 1024  # more than the pipes and, for ipc, the kernel buffers can hold
    received: list[bytes] = []

    async def body(wrapped: TrioZmqSocket, peer: Peer, nursery: trio.Nursery) -> None:
        await introduce(wrapped, peer)
        for n in range(count):  # nobody reads yet
            wrapped.send(b"%d|" % n + padding)
        assert wrapped._outbox, "precondition: the high-water mark was reached and frames wait in the outbox"
        nursery.start_soon(wrapped.pump, lambda frame: None)
        for _ in range(count):
            received.append(await peer.recv())

    run(make_pair, body, hwm=1)

    assert [frame.split(b"|")[0] for frame in received] == [b"%d" % n for n in range(count)]


def test_frame_sent_after_the_outbox_filled_waits_behind_it(make_pair: Callable[..., Pair]) -> None:
    """Once a frame waits in the outbox, later frames queue behind it even when the socket has room again."""
    padding = b"." * 1024
    received: list[bytes] = []

    async def main() -> None:
        wrapped, peer, dealer = make_pair(hwm=1)
        with trio.fail_after(DEADLINE):
            await introduce(wrapped, peer)
            await until_writable(dealer)
            sent = 0
            while not wrapped._outbox:  # fill the pipe until one frame has to wait
                wrapped.send(b"%d|" % sent + padding)
                sent += 1
            assert sent > len(wrapped._outbox), "precondition: some frames went out directly"
            received.append(await peer.recv())
            await until_writable(dealer)  # the socket has room again, and no pump has run
            wrapped.send(b"%d|last" % sent)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wrapped.pump, lambda frame: None)
                for _ in range(sent):
                    received.append(await peer.recv())
                wrapped.close()

    trio.run(main)

    assert [frame.split(b"|")[0] for frame in received] == [b"%d" % n for n in range(len(received))]
    assert received[-1].endswith(b"|last")
