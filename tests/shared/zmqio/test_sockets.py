"""Tests of shared/zmqio: the same cases on ``AsyncioZmqSocket`` and ``TrioZmqSocket`` (the ``driver``
fixture), against real ZeroMQ socket pairs over inproc:// and ipc:// (the ``endpoint`` fixture).

The wrapped side is a DEALER as in a worker, unless a case wraps the ROUTER as the supervisor does.
"""

from __future__ import annotations

import errno
import functools
import logging

import pytest
import zmq

from shared.zmqio.core import BATCH, ZmqSocketCore

from .conftest import IDENTITY, Driver, Inbox, MakePair, Peer, introduce, until_writable

PADDING = b"." * 1024
"""Makes a few thousand messages more than the pipes and, for ipc, the kernel buffers hold."""


def numbers(frames: list[bytes]) -> list[bytes]:
    return [frame.split(b"|")[0] for frame in frames]


def fill_until_one_waits(wrapped: ZmqSocketCore, head: list[bytes]) -> int:
    """Send numbered messages (after the frames ``head``) until one has to wait in the outbox; returns how
    many were sent, the last one being the one that waits."""
    sent = 0
    while not wrapped._outbox:
        wrapped.send([*head, b"%d|" % sent + PADDING])
        sent += 1
    assert len(wrapped._outbox) == 1
    return sent


async def one_waiting_with_room_again(driver: Driver, make_pair: MakePair) -> tuple[ZmqSocketCore, Peer, int]:
    """A wrapped DEALER whose outbox holds one message while the socket has room again, no pump having run;
    the peer took every message that went out directly (all of them: over ipc, one read may free no room,
    and what a peer has not taken from the kernel when a connection closes is lost). Returns the socket,
    the peer and how many messages were sent, the last one being the one that waits."""
    wrapped, peer, raw = make_pair(lambda frames: None, hwm=1)
    await introduce(wrapped, peer)
    await until_writable(driver, raw)
    sent = fill_until_one_waits(wrapped, [])
    assert sent > 1, "precondition: some messages went out directly"
    assert numbers([await peer.recv_frame() for _ in range(sent - 1)]) == [b"%d" % n for n in range(sent - 1)]
    await until_writable(driver, raw)
    return wrapped, peer, sent


# -- receiving: order, closing, handler errors, batches --------------------------------------------


def test_messages_arrive_in_order(driver: Driver, make_pair: MakePair) -> None:
    count = 500
    received: list[bytes] = []

    async def main() -> None:
        all_received = driver.event()

        def on_message(frames: list[bytes]) -> None:
            received.extend(frames)
            if len(received) == count:
                all_received.set()

        wrapped, peer, _ = make_pair(on_message)
        await introduce(wrapped, peer)
        for n in range(count // 2):  # some wait in the socket before the pump starts...
            peer.send(b"%d" % n)
        driver.start(wrapped)
        await driver.settle(wrapped)
        for n in range(count // 2, count):  # ...and some arrive while it waits on the FD
            peer.send(b"%d" % n)
        await all_received.wait()

    driver.run(main)

    assert received == [b"%d" % n for n in range(count)]


def test_close_while_waiting_stops_receiving(driver: Driver, make_pair: MakePair) -> None:
    async def main() -> None:
        wrapped, _, raw = make_pair(lambda frames: pytest.fail("no message expected"))
        driver.start(wrapped)
        await driver.settle(wrapped)
        assert driver.receiving(wrapped), "precondition: the pump watches the socket"
        wrapped.close()
        await driver.settle(wrapped)
        assert not driver.receiving(wrapped)
        assert raw.closed

    driver.run(main)


def test_closing_from_the_handler_stops_at_once(
    driver: Driver, make_pair: MakePair, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[bytes] = []

    async def main() -> None:
        def on_message(frames: list[bytes]) -> None:
            received.extend(frames)
            if frames == [b"stop"]:
                wrapped.close()

        wrapped, peer, _ = make_pair(on_message)
        await introduce(wrapped, peer)
        for frame in (b"first", b"stop", b"never"):
            peer.send(frame)
        driver.start(wrapped)
        while not wrapped._closed:
            await driver.checkpoint()
        await driver.settle(wrapped)
        assert not driver.receiving(wrapped)

    driver.run(main)

    assert received == [b"first", b"stop"]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_handler_exception_is_logged_and_receiving_goes_on(
    driver: Driver, make_pair: MakePair, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[bytes] = []

    async def main() -> None:
        done = driver.event()

        def on_message(frames: list[bytes]) -> None:
            received.extend(frames)
            if frames == [b"boom"]:
                raise RuntimeError("a bad message")
            if frames == [b"last"]:
                done.set()

        wrapped, peer, _ = make_pair(on_message)
        await introduce(wrapped, peer)
        driver.start(wrapped)
        peer.send(b"first")
        peer.send(b"boom")
        peer.send(b"last")
        await done.wait()

    with caplog.at_level(logging.ERROR, logger="mcp_supervisor.zmq"):
        driver.run(main)

    assert received == [b"first", b"boom", b"last"]
    [record] = [r for r in caplog.records if r.name == "mcp_supervisor.zmq"]
    assert record.message == "a received message could not be handled"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_other_work_runs_between_batches(driver: Driver, make_pair: MakePair) -> None:
    """A long backlog is handled BATCH messages at a time, with the loop's other tasks run in between.

    A ticker task counts its turns; each message records the count it saw. Messages handled with no turn
    in between form one run: none may be longer than two batches (Trio's scheduler may run the ticker before
    the pump in one batch of tasks and after it in the next, joining two rounds).
    """
    count = 4 * BATCH + 1
    seen: list[int] = []

    async def main() -> None:
        ticks = 0
        done = driver.event()

        def on_message(frames: list[bytes]) -> None:
            seen.append(ticks)
            if len(seen) == count:
                done.set()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await driver.checkpoint()

        wrapped, peer, _ = make_pair(on_message)
        await introduce(wrapped, peer)
        for n in range(count):
            peer.send(b"%d" % n)
        driver.spawn(ticker)
        driver.start(wrapped)
        await done.wait()

    driver.run(main)

    runs = [seen.count(tick) for tick in sorted(set(seen))]
    assert sum(runs) == count
    assert max(runs) <= 2 * BATCH, runs


# -- sending: order, the outbox, the edge a send consumes ------------------------------------------


def test_sends_from_several_tasks_arrive_in_order_per_task(driver: Driver, make_pair: MakePair) -> None:
    tasks, per_task = 6, 400
    received: list[bytes] = []

    async def main() -> None:
        wrapped, peer, _ = make_pair(lambda frames: None)
        await introduce(wrapped, peer)
        driver.start(wrapped)

        async def sender(task: int) -> None:
            for n in range(per_task):
                wrapped.send([b"%d:%d" % (task, n)])
                await driver.checkpoint()  # let the other senders in between

        for task in range(tasks):
            driver.spawn(functools.partial(sender, task))
        for _ in range(tasks * per_task):
            received.append(await peer.recv_frame())

    driver.run(main)

    assert len(received) == tasks * per_task
    by_task: dict[int, list[int]] = {}
    for frame in received:
        task, n = map(int, frame.split(b":"))
        by_task.setdefault(task, []).append(n)
    assert by_task == {task: list(range(per_task)) for task in range(tasks)}


def test_a_message_arriving_while_another_task_sends_is_not_lost(driver: Driver, make_pair: MakePair) -> None:
    """ZMQ_FD is edge-triggered: a send can swallow the edge that announced a reply.

    Each round parks the pump on the FD, lets the peer send a reply, and sends a request from the test's
    task before the pump runs again; every reply must still reach the handler before the deadline.
    """
    rounds = 2000

    async def main() -> None:
        replies = Inbox(driver)
        wrapped, peer, _ = make_pair(replies)
        await introduce(wrapped, peer)
        driver.start(wrapped)
        for n in range(rounds):
            await driver.settle(wrapped)  # the pump waits on the FD
            peer.send(b"reply %d" % n)
            wrapped.send([b"request %d" % n])
            assert await replies.get() == [b"reply %d" % n]
            assert await peer.recv_frame() == b"request %d" % n

    driver.run(main)


def test_request_reply_traffic_in_both_directions_loses_nothing(driver: Driver, make_pair: MakePair) -> None:
    """Several requests in flight: replies keep arriving while the wrapped side keeps sending, also from
    its handler."""
    total, window = 2000, 16
    replies: list[bytes] = []

    async def main() -> None:
        done = driver.event()
        sent = 0

        def on_reply(frames: list[bytes]) -> None:
            nonlocal sent
            replies.extend(frames)
            if sent < total:
                wrapped.send([b"%d" % sent])
                sent += 1
            if len(replies) == total:
                done.set()

        wrapped, peer, _ = make_pair(on_reply)
        await introduce(wrapped, peer)
        driver.start(wrapped)
        for _ in range(window):
            wrapped.send([b"%d" % sent])
            sent += 1

        async def echo() -> None:
            for _ in range(total):
                peer.send(b"re:" + await peer.recv_frame())

        driver.spawn(echo)
        await done.wait()

    driver.run(main)

    assert replies == [b"re:%d" % n for n in range(total)]


def test_outbox_keeps_order_past_the_high_water_mark(driver: Driver, make_pair: MakePair) -> None:
    count = 2000
    received: list[bytes] = []

    async def main() -> None:
        wrapped, peer, _ = make_pair(lambda frames: None, hwm=1)
        await introduce(wrapped, peer)
        for n in range(count):  # nobody reads yet
            wrapped.send([b"%d|" % n + PADDING])
        assert wrapped._outbox, (
            "precondition: the high-water mark was reached and messages wait in the outbox"
        )
        driver.start(wrapped)
        for _ in range(count):
            received.append(await peer.recv_frame())

    driver.run(main)

    assert numbers(received) == [b"%d" % n for n in range(count)]


def test_a_message_sent_after_the_outbox_filled_waits_behind_it(driver: Driver, make_pair: MakePair) -> None:
    """Once a message waits in the outbox, later ones queue behind it even when the socket has room again."""

    async def main() -> None:
        wrapped, peer, sent = await one_waiting_with_room_again(driver, make_pair)
        wrapped.send([b"%d|last" % sent])
        driver.start(wrapped)
        received = [await peer.recv_frame(), await peer.recv_frame()]
        assert numbers(received) == [b"%d" % (sent - 1), b"%d" % sent]
        assert received[1].endswith(b"|last")

    driver.run(main)


# -- multipart, a ROUTER, send errors --------------------------------------------------------------


def test_multipart_messages_round_trip_whole(driver: Driver, make_pair: MakePair) -> None:
    async def main() -> None:
        inbox = Inbox(driver)
        wrapped, peer, _ = make_pair(inbox, multipart=True)
        driver.start(wrapped)
        wrapped.send([b"one", b"two", b""])
        assert await peer.recv() == [b"one", b"two", b""]
        peer.send(b"a", b"b", b"c")
        peer.send(b"single")
        assert await inbox.get() == [b"a", b"b", b"c"]
        assert await inbox.get() == [b"single"]

    driver.run(main)


def test_a_wrapped_router_talks_to_peers_by_identity(driver: Driver, make_pair: MakePair) -> None:
    """The supervisor's use: messages are [identity, frame]; a send to a peer that is not connected raises
    at once (ROUTER_MANDATORY), and nothing else does."""

    async def main() -> None:
        inbox = Inbox(driver)
        wrapped, peer, _ = make_pair(inbox, multipart=True, wrap_router=True)
        driver.start(wrapped)
        peer.send(b"ready")
        assert await inbox.get() == [IDENTITY, b"ready"]
        wrapped.send([IDENTITY, b"call"])
        assert await peer.recv() == [b"call"]
        with pytest.raises(zmq.ZMQError) as raised:
            wrapped.send([b"nobody", b"call"])
        assert raised.value.errno == errno.EHOSTUNREACH
        assert not wrapped._outbox

    driver.run(main)


def test_a_queued_message_the_socket_refuses_is_dropped_and_the_pump_goes_on(
    driver: Driver, make_pair: MakePair, caplog: pytest.LogCaptureFixture
) -> None:
    """A message that waited in the outbox and is then refused (its peer is gone) is logged and dropped;
    the messages behind it still go out and receiving goes on."""
    received: list[bytes] = []

    async def main() -> None:
        inbox = Inbox(driver)
        wrapped, peer, _ = make_pair(inbox, hwm=1, multipart=True, wrap_router=True)
        peer.send(b"ready")
        driver.start(wrapped)
        assert await inbox.get() == [IDENTITY, b"ready"]
        sent = fill_until_one_waits(wrapped, [IDENTITY])  # nobody reads yet
        wrapped.send([b"nobody", b"lost"])
        wrapped.send([IDENTITY, b"%d|after" % sent])
        for _ in range(sent + 1):
            [frame] = await peer.recv()
            received.append(frame)
        peer.send(b"still there")
        assert await inbox.get() == [IDENTITY, b"still there"]
        assert not wrapped._outbox

    with caplog.at_level(logging.DEBUG, logger="mcp_supervisor.zmq"):
        driver.run(main)

    assert numbers(received) == [b"%d" % n for n in range(len(received))]
    assert received[-1].endswith(b"|after")
    assert [r.message for r in caplog.records if r.name == "mcp_supervisor.zmq"] == [
        "dropping a queued message: Host unreachable"
    ]


# -- closing ---------------------------------------------------------------------------------------


def test_close_is_idempotent_and_a_send_after_close_is_dropped(
    driver: Driver, make_pair: MakePair, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        wrapped, _, raw = make_pair(lambda frames: None)
        driver.start(wrapped)
        wrapped.close()
        wrapped.close()
        assert raw.closed
        with caplog.at_level(logging.DEBUG, logger="mcp_supervisor.zmq"):
            wrapped.send([b"too late"])  # does not raise
        assert not wrapped._outbox

    driver.run(main)

    assert [r.message for r in caplog.records if r.name == "mcp_supervisor.zmq"] == [
        "dropping a message sent after close"
    ]


def test_starting_after_close_receives_nothing(driver: Driver, make_pair: MakePair) -> None:
    async def main() -> None:
        wrapped, peer, _ = make_pair(lambda frames: pytest.fail("no message expected"))
        await introduce(wrapped, peer)
        peer.send(b"unread")
        wrapped.close()
        driver.start(wrapped)
        await driver.settle(wrapped)
        assert not driver.receiving(wrapped)

    driver.run(main)


def test_close_sends_what_waits_in_the_outbox_as_far_as_the_socket_takes_it(
    driver: Driver, make_pair: MakePair
) -> None:
    async def main() -> None:
        wrapped, peer, sent = await one_waiting_with_room_again(driver, make_pair)
        wrapped.close(linger=10_000)
        assert numbers([await peer.recv_frame()]) == [b"%d" % (sent - 1)]

    driver.run(main)


def test_each_driver_wraps_in_its_own_shim(driver: Driver, make_pair: MakePair) -> None:
    """Guards the parametrisation: the cases above really run on both shims."""

    async def main() -> None:
        wrapped, _, _ = make_pair(lambda frames: None)
        assert isinstance(wrapped, ZmqSocketCore)
        assert type(wrapped).__module__ == f"shared.zmqio.{driver.name}_socket"

    driver.run(main)


def test_a_receiver_takes_each_message_off_the_socket_in_its_own_way(
    driver: Driver, make_pair: MakePair
) -> None:
    """``receive`` replaces the plain receive (the router's tcp listener reads each message's User-Id)."""
    received: list[list[bytes]] = []

    def receive(socket: zmq.Socket[bytes]) -> list[bytes]:
        frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
        return [b"seen:" + frame.bytes for frame in frames]

    async def main() -> None:
        done = driver.event()

        def on_message(frames: list[bytes]) -> None:
            received.append(frames)
            if len(received) == 2:
                done.set()

        wrapped, peer, _ = make_pair(on_message, receive=receive)
        await introduce(wrapped, peer)
        driver.start(wrapped)
        peer.send(b"one")
        peer.send(b"two")
        await done.wait()

    driver.run(main)
    assert received == [[b"seen:one"], [b"seen:two"]]
