"""The router's side of the quarantine, over a fake socket (issue 17, section 2): a death is charged to
the tools in flight only when the arbiter says it is one, a quarantined tool's calls are refused without
reaching a worker, it leaves ``tools/list`` and comes back, and its last crash is not retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.errors import ToolQuarantinedError, WorkerLostError
from shared.protocol import Call
from supervisor.quarantine import QuarantinePolicy
from supervisor.router import Router
from tests.supervisor.fakes import WAIT, FakeSocket, FakeWorker, connect, running_router

pytestmark = pytest.mark.anyio

POLICY = QuarantinePolicy(deaths=3, window=60.0, seconds=300.0)


async def crash_during(
    router: Router, socket: FakeSocket, pid: int, tool: str = "crash", *, death: bool = True, **meta: Any
) -> tuple[FakeWorker, bool]:
    """Connect asyncio-0 as ``pid`` serving ``crash`` and ``echo``, start a call of ``tool``, let the worker
    die while it runs; returns the worker and what ``worker_gone`` answered. The call fails."""
    worker = connect(router, socket, "asyncio-0", pid, "asyncio", "crash", "echo", **meta)
    call = asyncio.create_task(router.call(tool, {}, timeout=30))
    await worker.next_call()
    running = router.worker_gone(pid, f"worker asyncio-0 (pid {pid}) killed by SIGSEGV", death=death)
    with pytest.raises(WorkerLostError):
        await asyncio.wait_for(call, WAIT)
    return worker, running


async def test_the_third_crash_quarantines_the_tool_its_calls_never_reach_a_worker_and_others_serve() -> None:
    changes: list[int] = []
    async with running_router(["asyncio"], quarantine=POLICY) as (router, socket):
        router.catalog.on_change = lambda: changes.append(router.catalog_version)
        for pid in (1, 2, 3):
            _, running = await crash_during(router, socket, pid)
            assert running is True
        assert set(router.quarantine.active) == {"crash"}
        worker = connect(router, socket, "asyncio-0", 4, "asyncio", "crash", "echo")
        assert [tool["name"] for tool in router.tools()] == ["echo"]
        assert changes  # list_changed goes out
        with pytest.raises(ToolQuarantinedError, match=r"tool 'crash' is quarantined: its worker died 3"):
            await router.call("crash", {}, timeout=30)
        assert socket.sent_to(worker.identity, Call) == []  # refused before any worker was asked
        assert router.stats.tools["crash"].outcomes["quarantined"] == 1
        call = asyncio.create_task(router.call("echo", {}, timeout=30))
        worker.answer(await worker.next_call())
        assert (await asyncio.wait_for(call, WAIT))["isError"] is False
        assert router.quarantine.release("crash") is not None
        assert [tool["name"] for tool in router.tools()] == ["crash", "echo"]
        call = asyncio.create_task(router.call("crash", {}, timeout=30))
        worker.answer(await worker.next_call())  # it runs again
        await asyncio.wait_for(call, WAIT)


async def test_an_exit_the_arbiter_does_not_call_a_death_charges_nothing() -> None:
    """A stop, a replacement, a drained worker: its calls fail (or were drained) but no tool is blamed."""
    async with running_router(["asyncio"], quarantine=POLICY) as (router, socket):
        for pid in (1, 2, 3, 4):
            _, running = await crash_during(router, socket, pid, death=False)
            assert running is True  # calls were in flight, all the same
        assert router.quarantine.active == {} and router.quarantine.deaths_of("crash") == 0


async def test_a_death_with_no_tool_call_in_flight_charges_nothing_and_says_so() -> None:
    async with running_router(["asyncio"], quarantine=POLICY) as (router, socket):
        connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        assert router.worker_gone(1, "worker asyncio-0 (pid 1) exit code 70", death=True) is False
        assert router.worker_gone(99, "not connected", death=True) is False
        assert router.quarantine.deaths_of("echo") == 0


async def test_a_read_only_tool_whose_crash_just_quarantined_it_is_not_sent_again() -> None:
    once = QuarantinePolicy(deaths=1, window=60.0, seconds=300.0)
    async with running_router(["asyncio"], quarantine=once) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "crash", read_only=True)
        other = connect(router, socket, "asyncio-1", 2, "asyncio", "crash", read_only=True)
        call = asyncio.create_task(router.call("crash", {}, timeout=30))
        await socket.next(Call)
        sent_to = worker if socket.sent_to(worker.identity, Call) else other
        router.worker_gone(sent_to.pid, "worker asyncio-x killed by SIGSEGV", death=True)
        with pytest.raises(WorkerLostError, match="killed by SIGSEGV"):
            await asyncio.wait_for(call, WAIT)
        assert len(socket.sent_to(worker.identity, Call) + socket.sent_to(other.identity, Call)) == 1
