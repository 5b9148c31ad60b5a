"""Tests of what only ``TrioZmqSocket`` offers: ``pump(until=...)``, which returns control between rounds so
that another task can carry on reading (the Trio worker's readers), against real ZeroMQ pairs over inproc://
and ipc://. The cases both shims share are in test_sockets.py.
"""

from __future__ import annotations

from typing import cast

import pytest

from shared.zmqio.trio_socket import TrioZmqSocket

from .conftest import Driver, Inbox, MakePair, TrioDriver, introduce


@pytest.fixture
def driver() -> Driver:
    return TrioDriver()


def test_pump_returns_after_the_round_that_made_until_true_and_the_next_pump_carries_on(
    driver: Driver, make_pair: MakePair
) -> None:
    received: list[list[bytes]] = []

    async def main() -> None:
        wrapped, peer, _ = make_pair(received.append)
        await introduce(wrapped, peer)
        pump = cast(TrioZmqSocket, wrapped).pump
        for n in range(3):
            peer.send(b"%d" % n)
        await pump(received.append, lambda: len(received) >= 2)
        assert len(received) >= 2
        for n in range(3, 6):
            peer.send(b"%d" % n)
        await pump(received.append, lambda: len(received) == 6)

    driver.run(main)
    assert received == [[b"%d" % n] for n in range(6)]


def test_a_message_that_arrives_while_no_pump_runs_is_read_by_the_next_pump_despite_a_send(
    driver: Driver, make_pair: MakePair
) -> None:
    """Between two pumps nobody waits for the fd, so a send leaves ``ZMQ_EVENTS`` alone; it may still consume
    the fd's edge that announced a reply, which the next pump must read all the same (it drains before it
    waits)."""
    rounds = 500

    async def main() -> None:
        replies = Inbox(driver)
        wrapped, peer, _ = make_pair(replies)
        await introduce(wrapped, peer)
        pump = cast(TrioZmqSocket, wrapped).pump
        for n in range(rounds):
            peer.send(b"reply %d" % n)
            wrapped.send([b"request %d" % n])
            await pump(replies, lambda: bool(replies.items))
            assert await replies.get() == [b"reply %d" % n]
            assert await peer.recv_frame() == b"request %d" % n

    driver.run(main)
