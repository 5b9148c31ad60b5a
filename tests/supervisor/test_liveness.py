"""Unit tests of supervisor/liveness.py on a fake clock: heartbeats, silent workers, late ticks."""

from __future__ import annotations

import asyncio

import pytest

from shared.protocol import LIVENESS_MISSES, Heartbeat, Message
from supervisor.links import WorkerLink
from supervisor.liveness import Liveness
from tests.supervisor.fakes import WAIT

pytestmark = pytest.mark.anyio

INTERVAL = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Beats:
    """A ``Liveness`` over ``links`` on a fake clock, with what it sent and reported."""

    def __init__(self, *links: WorkerLink) -> None:
        self.clock = Clock()
        self.links = {link.identity: link for link in links}
        self.sent: list[tuple[str, Message]] = []
        self.silent: list[str] = []
        self.liveness = Liveness(self.links, INTERVAL, self.send, self.on_silent, clock=self.clock)

    def send(self, link: WorkerLink, message: Message) -> None:
        self.sent.append((link.worker_id, message))

    def on_silent(self, link: WorkerLink) -> None:
        self.silent.append(link.worker_id)

    def tick_after(self, seconds: float) -> None:
        self.clock.now += seconds
        self.liveness.tick()


def link(worker_id: str, last_heard: float, in_flight: int = 0) -> WorkerLink:
    worker = WorkerLink(worker_id, "asyncio", 1, worker_id.encode(), [], [], last_heard=last_heard)
    worker.in_flight.update(range(in_flight))
    return worker


def test_each_tick_sends_every_worker_a_heartbeat_with_its_calls_in_flight() -> None:
    beats = Beats(link("asyncio-0", 1000.0, in_flight=2), link("asyncio-1", 1000.0))
    beats.tick_after(INTERVAL)

    assert beats.sent == [("asyncio-0", Heartbeat(2)), ("asyncio-1", Heartbeat(0))]
    assert beats.silent == []


def test_a_worker_silent_for_longer_than_the_misses_allow_is_reported_once() -> None:
    quiet, talking = link("asyncio-0", 1000.0), link("asyncio-1", 1000.0)
    beats = Beats(quiet, talking)
    assert beats.liveness.silence_timeout == INTERVAL * LIVENESS_MISSES
    for _ in range(LIVENESS_MISSES):
        beats.tick_after(INTERVAL)
        talking.last_heard = beats.clock.now
    assert beats.silent == []  # exactly LIVENESS_MISSES intervals: not yet

    beats.tick_after(INTERVAL)
    assert beats.silent == ["asyncio-0"] and quiet.silent and not talking.silent
    assert beats.sent[-1] == ("asyncio-1", Heartbeat(0))  # a silent worker gets no heartbeat
    beats.tick_after(INTERVAL)
    assert beats.silent == ["asyncio-0"]


def test_a_late_tick_gives_every_worker_the_benefit_of_the_doubt() -> None:
    quiet = link("asyncio-0", 1000.0)
    beats = Beats(quiet)
    beats.tick_after(INTERVAL * (LIVENESS_MISSES + 5))  # the supervisor itself was stuck

    assert beats.silent == []
    assert quiet.last_heard == beats.clock.now - INTERVAL
    assert beats.sent == [("asyncio-0", Heartbeat(0))]
    for _ in range(LIVENESS_MISSES - 1):
        beats.tick_after(INTERVAL)
    assert beats.silent == []
    beats.tick_after(INTERVAL)
    assert beats.silent == ["asyncio-0"]


async def test_serve_ticks_every_interval() -> None:
    ticked = asyncio.Event()
    links = {b"asyncio-0": link("asyncio-0", 0.0)}
    liveness = Liveness(links, 0.001, lambda link, message: ticked.set(), lambda link: ticked.set())
    task = asyncio.create_task(liveness.serve())
    try:
        await asyncio.wait_for(ticked.wait(), WAIT)
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
