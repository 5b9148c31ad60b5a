"""The router's tcp listener for remote workers (supervisor/worker_listener.py), with real ZeroMQ sockets
on loopback in this process: CurveZMQ with the allow-list, the identity that names the proved key, the
refusals and their log lines, the message size limit, and the local socket's guard."""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from supervisor.keys import read_public_key, read_secret_key, write_key_pair
from supervisor.links import node_of, remote_identity
from supervisor.router_types import FrameSocket
from supervisor.worker_listener import ListenOptions, open_worker_sockets
from tests.conftest import free_port

pytestmark = pytest.mark.anyio

WAIT = 5.0


@dataclass
class Setup:
    listen: ListenOptions
    server_public: bytes
    root: Path

    def pair(self, name: str, allowed: bool) -> tuple[bytes, bytes]:
        public, secret = write_key_pair(self.root / "nodes" / name, name)
        if allowed:
            shutil.copy(public, self.listen.allowed_keys / public.name)
        return read_secret_key(secret)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    public, secret = write_key_pair(tmp_path / "front", "front")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    listen = ListenOptions(f"tcp://127.0.0.1:{free_port()}", secret, allowed)
    yield Setup(listen, read_public_key(public), tmp_path)


@asynccontextmanager
async def sockets(
    setup: Setup, max_message_size: int = 1 << 16
) -> AsyncIterator[tuple[FrameSocket, asyncio.Queue[list[bytes]]]]:
    received: asyncio.Queue[list[bytes]] = asyncio.Queue()
    ipc = f"ipc://{setup.root}/router.sock"
    socket = open_worker_sockets(ipc, max_message_size, received.put_nowait, setup.listen)
    try:
        yield socket, received
    finally:
        socket.close()


class Peer:
    """A DEALER of a node (with its keys), or a local worker (without)."""

    def __init__(
        self, endpoint: str, identity: bytes, server: bytes | None, keys: tuple[bytes, bytes] | None
    ) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, identity)
        self.socket.setsockopt(zmq.LINGER, 0)
        if keys is not None and server is not None:
            self.socket.setsockopt(zmq.CURVE_SERVERKEY, server)
            self.socket.setsockopt(zmq.CURVE_PUBLICKEY, keys[0])
            self.socket.setsockopt(zmq.CURVE_SECRETKEY, keys[1])
        self.socket.connect(endpoint)

    async def receive(self) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while loop.time() < deadline:
            try:
                return self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                await asyncio.sleep(0.01)
        raise AssertionError("nothing received")

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


async def nothing_within(queue: asyncio.Queue[list[bytes]], seconds: float) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), seconds)


async def test_an_allowed_node_reaches_the_router_named_after_its_key_and_hears_back(setup: Setup) -> None:
    keys = setup.pair("node-a", allowed=True)
    async with sockets(setup) as (socket, received):
        peer = Peer(setup.listen.endpoint, b"node-a:trio-0/42/1", setup.server_public, keys)
        try:
            peer.socket.send(b"hello")
            identity, frame = await asyncio.wait_for(received.get(), WAIT)
            assert identity == remote_identity("node-a", b"node-a:trio-0/42/1") and frame == b"hello"
            assert node_of(identity) == "node-a"
            socket.send([identity, b"back"])
            assert await peer.receive() == b"back"
            peer.close()
            with pytest.raises(zmq.ZMQError) as gone:  # ROUTER_MANDATORY: the connection is gone
                for _ in range(500):
                    socket.send([identity, b"anyone?"])
                    await asyncio.sleep(0.01)
            assert gone.value.errno == errno.EHOSTUNREACH
        finally:
            if not peer.context.closed:
                peer.close()


async def test_a_key_not_allowed_is_refused_logged_once_and_never_heard(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    keys = setup.pair("intruder", allowed=False)
    async with sockets(setup) as (_, received):
        with caplog.at_level(logging.WARNING, "mcp_supervisor.router"):
            peers = [Peer(setup.listen.endpoint, b"x", setup.server_public, keys) for _ in range(3)]
            for peer in peers:
                peer.socket.send(b"let me in")
            await nothing_within(received, 1.0)
            for peer in peers:
                peer.close()
    refusals = [r.getMessage() for r in caplog.records if "refused a remote worker" in r.getMessage()]
    assert len(refusals) == 1, refusals  # one line per address per REFUSAL_LOG_INTERVAL
    assert "from 127.0.0.1" in refusals[0] and keys[0].decode() in refusals[0]


async def test_a_peer_without_curve_is_refused(setup: Setup) -> None:
    async with sockets(setup) as (_, received):
        peer = Peer(setup.listen.endpoint, b"plain", None, None)
        peer.socket.send(b"no keys")
        await nothing_within(received, 1.0)
        peer.close()


async def test_a_key_added_to_the_allow_list_is_accepted_at_the_next_connection(setup: Setup) -> None:
    keys = setup.pair("late", allowed=False)
    async with sockets(setup) as (_, received):
        first = Peer(setup.listen.endpoint, b"late:trio-0/1/1", setup.server_public, keys)
        first.socket.send(b"refused")
        await nothing_within(received, 0.5)
        first.close()
        shutil.copy(setup.root / "nodes" / "late" / "late.key", setup.listen.allowed_keys / "late.key")
        second = Peer(setup.listen.endpoint, b"late:trio-0/1/2", setup.server_public, keys)
        second.socket.send(b"accepted")
        assert (await asyncio.wait_for(received.get(), WAIT))[1] == b"accepted"
        second.close()


async def test_a_message_over_the_size_limit_never_reaches_the_router(setup: Setup) -> None:
    keys = setup.pair("node-a", allowed=True)
    async with sockets(setup, max_message_size=4096) as (_, received):
        peer = Peer(setup.listen.endpoint, b"node-a:big/1/1", setup.server_public, keys)
        peer.socket.send(b"x" * 8192)
        await nothing_within(received, 1.0)
        peer.close()


async def test_a_local_message_posing_as_a_remote_one_is_dropped(setup: Setup) -> None:
    async with sockets(setup) as (_, received):
        peer = Peer(f"ipc://{setup.root}/router.sock", remote_identity("node-a", b"forged"), None, None)
        peer.socket.send(b"i am a node")
        await nothing_within(received, 0.5)
        local = Peer(f"ipc://{setup.root}/router.sock", b"trio-0/7", None, None)
        local.socket.send(b"i am local")
        assert await asyncio.wait_for(received.get(), WAIT) == [b"trio-0/7", b"i am local"]
        peer.close()
        local.close()


async def test_no_peer_gets_in_while_no_zap_handler_answers(setup: Setup) -> None:
    keys = setup.pair("node-a", allowed=True)
    async with sockets(setup) as (socket, received):
        socket._authenticator.stop()  # type: ignore[attr-defined]  # as if its thread had died
        peer = Peer(setup.listen.endpoint, b"node-a:trio-0/1/1", setup.server_public, keys)
        peer.socket.send(b"unchecked?")
        await nothing_within(received, 1.0)  # ZAP_ENFORCE_DOMAIN: no handler, no entry
        peer.close()
