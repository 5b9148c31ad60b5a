"""Tests of shared/zmqio/core.py beyond the socket cases every shim runs (test_sockets.py): the workers'
DEALER setup."""

from __future__ import annotations

import itertools

import zmq

from shared.zmqio.core import WORKER_LINGER_MS, connect_dealer

_names = itertools.count()


def test_connect_dealer_configures_a_worker_dealer_and_connects() -> None:
    endpoint = f"inproc://connect-dealer-{next(_names)}"
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(endpoint)
    dealer = connect_dealer(context, endpoint, b"asyncio-0/123", 4096)
    try:
        assert dealer.type == zmq.DEALER
        assert dealer.getsockopt(zmq.IDENTITY) == b"asyncio-0/123"
        assert dealer.getsockopt(zmq.LINGER) == WORKER_LINGER_MS == 1000
        assert dealer.getsockopt(zmq.MAXMSGSIZE) == 4096
        dealer.send(b"ready")
        assert router.poll(10_000), "the DEALER is connected to the endpoint"
        assert router.recv_multipart() == [b"asyncio-0/123", b"ready"]
    finally:
        dealer.close(linger=0)
        router.close(linger=0)
        context.term()
