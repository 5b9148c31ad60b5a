"""A node's relay of one worker to the front (supervisor/node_relay.py), against a front that is a bare
CURVE ROUTER on loopback in this process: the READY it joins with, what goes up before and after the
front answers, the calls of the current connection only, and joining again after STOP or silence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import zmq

from shared.protocol import (
    PROTOCOL_VERSION,
    Call,
    Cancel,
    Heartbeat,
    Leaving,
    Message,
    Ready,
    Result,
    Stop,
    decode,
    encode,
    peek,
)
from supervisor import node_relay
from supervisor.links import WorkerLink
from supervisor.node_relay import Relay, UpstreamOptions
from tests.conftest import free_port

pytestmark = pytest.mark.anyio

WAIT = 5.0


class Front:
    """The front's side: a ROUTER with the server key (no ZAP: any client key gets in)."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, secret: bytes) -> None:
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.CURVE_SERVER, 1)
        self.socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
        self.socket.bind(endpoint)

    async def receive(self, seconds: float = WAIT) -> tuple[bytes, Message]:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            try:
                identity, frame = self.socket.recv_multipart(zmq.NOBLOCK)
                return identity, decode(frame)
            except zmq.Again:
                await asyncio.sleep(0.005)
        raise TimeoutError("the front received nothing")

    async def nothing(self, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            await self.receive(seconds)

    def send(self, identity: bytes, message: Message) -> None:
        self.socket.send_multipart([identity, encode(message)])


@dataclass
class Worker:
    """What the relay sends the worker, decoded."""

    frames: list[Message] = field(default_factory=list)

    def to_worker(self, link: WorkerLink, frame: bytes) -> None:
        self.frames.append(decode(frame))


@asynccontextmanager
async def relayed(
    server_key: bytes | None = None,
) -> AsyncIterator[tuple[Relay, Front, Worker, list[str]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    server_public, server_secret = zmq.curve_keypair()
    public, secret = zmq.curve_keypair()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    front = Front(context, endpoint, server_secret)
    link = WorkerLink("trio-0", "trio", 4242, b"trio-0/4242", [{"name": "echo"}], [], {"x": "asyncio"})
    options = UpstreamOptions(endpoint, "node-a", server_key or server_public, public, secret, 1 << 20)
    worker, reports = Worker(), []
    relay = Relay(link, options, context, worker.to_worker, reports.append)
    try:
        yield relay, front, worker, reports
    finally:
        relay.close()
        front.socket.close(0)
        context.term()


async def join(relay: Relay, front: Front) -> bytes:
    relay.join()
    identity, ready = await front.receive()
    assert isinstance(ready, Ready)
    front.send(identity, Heartbeat(0))
    await until(lambda: relay.state == "joined")
    return identity


async def until(predicate: object, seconds: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def up(relay: Relay, message: Message) -> None:
    """The worker sends ``message`` (the node's router hands it to the relay)."""
    frame = encode(message)
    relay.from_worker(*peek(frame), frame)


async def test_the_relay_joins_with_the_workers_ready_named_after_its_node() -> None:
    async with relayed() as (relay, front, _, _):
        relay.join()
        identity, ready = await front.receive()
        assert identity == b"node-a:trio-0/4242/1"
        assert ready == Ready(
            "node-a:trio-0", 4242, "trio", PROTOCOL_VERSION, [{"name": "echo"}], [], {"x": "asyncio"}
        )
        up(relay, Heartbeat(0))  # not joined yet: nothing but the READY goes up
        await front.nothing(0.2)
        front.send(identity, Heartbeat(0))
        await until(lambda: relay.state == "joined")
        up(relay, Heartbeat(0))
        assert (await front.receive())[1] == Heartbeat(0)


async def test_only_the_calls_of_the_current_connection_go_up() -> None:
    async with relayed() as (relay, front, worker, _):
        identity = await join(relay, front)
        front.send(identity, Call(7, "echo", {}, 5.0, None, None))
        await until(lambda: worker.frames)
        assert isinstance(worker.frames[0], Call) and relay.link.in_flight == {7}
        up(relay, Result(99, {"content": []}))  # a call this connection never sent: dropped
        up(relay, Result(7, {"content": []}))
        assert (await front.receive())[1] == Result(7, {"content": []}) and relay.link.in_flight == set()
        await front.nothing(0.2)


async def test_a_stop_from_the_front_cancels_the_workers_calls_and_joins_again() -> None:
    async with relayed() as (relay, front, worker, _):
        identity = await join(relay, front)
        front.send(identity, Call(7, "echo", {}, 5.0, None, None))
        await until(lambda: relay.link.in_flight == {7})
        front.send(identity, Stop("rejoin: this router does not know the worker"))
        await until(lambda: any(isinstance(m, Cancel) for m in worker.frames))
        assert relay.link.in_flight == set()
        again, ready = await front.receive()  # after JOIN_BACKOFF_INITIAL
        assert again == b"node-a:trio-0/4242/2" and isinstance(ready, Ready)
        up(relay, Result(7, {"content": []}))  # the old connection's call: never goes up
        front.send(again, Heartbeat(0))
        await until(lambda: relay.state == "joined")
        await front.nothing(0.2)


async def test_a_refusal_is_waited_out_longer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_relay, "REFUSED_BACKOFF", 0.3)
    async with relayed() as (relay, front, _, _):
        relay.join()
        identity, _ = await front.receive()
        front.send(identity, Stop("refused: its entries differ from pool trio's"))
        await until(lambda: relay.state == "idle")
        await front.nothing(0.2)  # not before REFUSED_BACKOFF
        assert isinstance((await front.receive())[1], Ready)


async def test_leaving_tells_the_front_and_never_joins_again() -> None:
    async with relayed() as (relay, front, _, _):
        identity = await join(relay, front)
        relay.leave("its node is draining it")
        assert (await front.receive())[1] == Leaving("its node is draining it")
        front.send(identity, Stop("the supervisor is stopping"))
        await until(lambda: relay.state == "closed")
        await front.nothing(1.0)


async def test_leaving_before_the_front_first_answered_still_tells_it() -> None:
    # the front may have accepted the READY and routed to the worker before its first frame reaches the
    # node: a node stopped in that moment must still say goodbye, or the front logs the worker as lost
    async with relayed() as (relay, front, _, _):
        relay.join()
        identity, ready = await front.receive()
        assert isinstance(ready, Ready) and relay.state == "joining"
        relay.leave("its node is stopping")
        assert (await front.receive()) == (identity, Leaving("its node is stopping"))
        assert relay.state == "leaving"


async def test_a_silent_front_is_left_and_joined_again() -> None:
    async with relayed() as (relay, front, _, _):
        await join(relay, front)
        relay.check(relay.last_heard + 0.5, 1.0)
        assert relay.state == "joined"
        relay.check(relay.last_heard + 2.0, 1.0)
        assert relay.state == "idle"
        again, ready = await front.receive()
        assert again.endswith(b"/2") and isinstance(ready, Ready)


async def test_a_wrong_server_key_is_reported_and_tried_again_later() -> None:
    wrong, _ = zmq.curve_keypair()
    async with relayed(server_key=wrong) as (relay, _, _, reports):
        relay.join()
        await until(lambda: reports)
        assert "is node_server_key the front's public key?" in reports[0]
        assert relay.state == "idle"  # waiting for its next try


async def test_a_ready_without_an_answer_is_sent_again_on_a_new_connection() -> None:
    async with relayed() as (relay, front, _, reports):
        relay.join()
        first, _ = await front.receive()  # taken, never answered: a front that lost it
        relay.check(relay.last_heard + 0.5, 1.0)
        assert relay.state == "joining"
        relay.check(relay.last_heard + 2.0, 1.0)
        assert relay.state == "idle" and "does not answer" in reports[0]
        again, ready = await front.receive()
        assert again != first and isinstance(ready, Ready)
