"""Unit tests of supervisor/admission.py: the least-loaded choice, the limits and the calls that wait."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.errors import NoWorkerError, ServerBusyError
from supervisor.admission import Admission
from supervisor.catalog import Catalog
from supervisor.links import WorkerLink
from tests.supervisor.fakes import WAIT, tool_entry

pytestmark = pytest.mark.anyio


def link(worker_id: str, pool: str = "asyncio", in_flight: int = 0) -> WorkerLink:
    pid = int(worker_id.rpartition("-")[2]) + 100
    worker = WorkerLink(worker_id, pool, pid, f"{worker_id}/{pid}".encode(), [], [])
    worker.in_flight.update(range(in_flight))
    return worker


def admission(max_in_flight: int = 4, max_queued: int = 8, **limits: int) -> Admission:
    catalog = Catalog(["asyncio", "trio"])
    catalog.take(
        "asyncio", [tool_entry(name, max_concurrency=limit) for name, limit in limits.items()], [], {}
    )
    return Admission(catalog, max_in_flight=max_in_flight, max_queued=max_queued)


def soon(seconds: float = WAIT) -> float:
    return time.monotonic() + seconds


async def test_the_least_loaded_routable_worker_of_the_pool_takes_the_call() -> None:
    choice = admission()
    busy, idle, other_pool = (
        link("asyncio-0", in_flight=2),
        link("asyncio-1", in_flight=1),
        link("trio-0", "trio"),
    )
    for worker in (busy, idle, other_pool):
        choice.add(worker)

    assert choice.take("asyncio", "echo") is idle
    idle.in_flight.update({10, 11})  # now 3
    assert choice.take("asyncio", "echo") is busy
    assert choice.take("trio", "echo") is other_pool


async def test_a_tie_goes_to_the_worker_routable_first() -> None:
    choice = admission()
    first, second = link("asyncio-0"), link("asyncio-1")
    choice.add(first)
    choice.add(second)
    choice.add(first)  # adding twice changes nothing

    assert choice.take("asyncio", "echo") is first


async def test_removed_workers_are_not_chosen_and_the_pool_stops_being_ready() -> None:
    choice = admission()
    worker = link("asyncio-0")
    choice.add(worker)
    assert choice.ready_pools() == {"asyncio": True, "trio": False}

    choice.remove(worker)
    choice.remove(worker)  # a no-op
    assert choice.take("asyncio", "echo") is None
    assert choice.ready_pools() == {"asyncio": False, "trio": False}
    assert choice.serves("trio") and not choice.serves("gpu")


async def test_a_worker_at_max_in_flight_takes_no_more() -> None:
    choice = admission(max_in_flight=2)
    full = link("asyncio-0", in_flight=2)
    choice.add(full)

    assert choice.take("asyncio", "echo") is None
    with pytest.raises(
        ServerBusyError, match="every asyncio worker has 2 calls in flight and 1 calls are waiting"
    ):
        await choice.admit("asyncio", "echo", soon(0.01))
    assert choice.queued == 0


async def test_a_tool_at_its_max_concurrency_runs_no_more_calls_anywhere() -> None:
    choice = admission(scarce=1)
    choice.add(link("asyncio-0"))
    choice.add(link("asyncio-1"))

    assert choice.take("asyncio", "scarce") is not None
    assert choice.take("asyncio", "scarce") is None
    assert choice.take("asyncio", "echo") is not None  # other tools are not limited
    with pytest.raises(ServerBusyError, match=r"tool 'scarce' allows 1 concurrent calls \(max_concurrency\)"):
        await choice.admit("asyncio", "scarce", soon(0.01))
    choice.release("scarce")
    assert choice.take("asyncio", "scarce") is not None


async def queued(choice: Admission, pool: str, tool: str) -> asyncio.Task[WorkerLink]:
    """A call of ``tool`` that ``admit`` made wait for room."""
    waiting = asyncio.create_task(choice.admit(pool, tool, soon()))
    before = choice.queued
    while choice.queued == before:
        await asyncio.sleep(0)  # one step of the task: it queues before it first yields
    return waiting


async def test_a_waiting_call_gets_the_room_a_finished_call_frees() -> None:
    choice = admission(max_in_flight=1)
    worker = link("asyncio-0")
    choice.add(worker)
    assert choice.take("asyncio", "echo") is worker
    worker.in_flight.add(1)  # the router's part: the call is in flight
    waiting = await queued(choice, "asyncio", "echo")
    worker.in_flight.clear()  # the router's part: the call is over
    assert choice.take("asyncio", "echo") is None  # a new call does not overtake the waiting one

    choice.release("echo")
    assert await asyncio.wait_for(waiting, WAIT) is worker
    assert choice.queued == 0


async def test_a_call_waiting_for_its_tool_s_room_gets_it() -> None:
    choice = admission(scarce=1)
    choice.add(link("asyncio-0"))
    assert choice.take("asyncio", "scarce") is not None
    waiting = await queued(choice, "asyncio", "scarce")

    choice.release("scarce")
    assert await asyncio.wait_for(waiting, WAIT) is not None


async def test_at_most_max_queued_calls_wait() -> None:
    choice = admission(max_in_flight=1, max_queued=1)
    choice.add(link("asyncio-0", in_flight=1))
    waiting = await queued(choice, "asyncio", "echo")

    with pytest.raises(ServerBusyError, match="1 calls are waiting"):
        await choice.admit("asyncio", "echo", soon())
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert choice.queued == 0  # a cancelled waiter leaves the queue


async def test_a_call_waits_for_a_worker_of_its_pool_to_become_ready() -> None:
    choice = admission()
    waiting = asyncio.create_task(choice.admit("asyncio", "echo", soon()))
    await asyncio.sleep(0)
    worker = link("asyncio-0")
    choice.add(worker)

    assert await asyncio.wait_for(waiting, WAIT) is worker


async def test_no_worker_ready_by_the_deadline_is_no_worker_error() -> None:
    choice = admission()
    with pytest.raises(NoWorkerError, match="no asyncio worker is ready"):
        await choice.admit("asyncio", "echo", time.monotonic())
    with pytest.raises(NoWorkerError, match="no asyncio worker became ready within 10 s"):
        await choice.admit("asyncio", "echo", soon(0.01))


async def test_a_call_waiting_for_a_worker_fails_fast_when_its_pool_fails() -> None:
    catalog = Catalog(["asyncio"])
    choice = Admission(catalog, max_in_flight=4, max_queued=8)
    waiting = asyncio.create_task(choice.admit("asyncio", "echo", soon(60)))
    await asyncio.sleep(0)  # it waits for a worker now
    catalog.set_failed("asyncio", "every asyncio worker is failing")
    choice.wake("asyncio")

    with pytest.raises(NoWorkerError, match="runtime asyncio is unavailable"):
        await asyncio.wait_for(waiting, WAIT)


async def test_a_failed_pool_takes_no_call() -> None:
    catalog = Catalog(["asyncio"])
    choice = Admission(catalog, max_in_flight=4, max_queued=8)
    choice.add(link("asyncio-0"))
    catalog.set_failed("asyncio", "every asyncio worker is failing")

    assert choice.take("asyncio", "echo") is None
    with pytest.raises(
        NoWorkerError, match="runtime asyncio is unavailable: every asyncio worker is failing"
    ):
        await choice.admit("asyncio", "echo", soon())
