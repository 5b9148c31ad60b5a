"""Warm spares on the arbiter's fake process table and fake clock (the harness of ``test_arbiter.py``):
a spare starts once its pool is READY and is held; a slot whose worker dies or hangs adopts it without
waiting; a slot that keeps dying waits its backoff first; a spare that dies is only started again;
stop, reload and scale stop spares by pid."""

from __future__ import annotations

import asyncio
import logging
import signal

import pytest

from supervisor.process import WorkerProcess
from tests.supervisor.test_arbiter import (
    FakeProcess,
    Harness,
    eventually,
    link,
    running,
    settings,
    settle,
    short_stop_wait,
)

pytestmark = pytest.mark.anyio
__all__ = ["short_stop_wait"]  # the autouse fixture applies here too

SPARE = "trio-spare-0"


def spare(h: Harness) -> WorkerProcess | None:
    return next((w for w in h.arbiter.spares.workers() if w.worker_id == SPARE), None)


async def ready_slot(h: Harness, worker_id: str = "trio-0") -> FakeProcess:
    process = await h.live(worker_id)
    h.arbiter.on_ready(link(worker_id, process.pid))
    return process


async def ready_spare(h: Harness, not_pid: int | None = None) -> FakeProcess:
    """The spare's process once it runs (another than ``not_pid``), after its READY."""
    await eventually(lambda: (s := spare(h)) is not None and s.pid not in (None, not_pid), "a spare to run")
    found = spare(h)
    assert found is not None and isinstance(found.process, FakeProcess)
    h.arbiter.on_ready(link(SPARE, found.process.pid))
    return found.process


async def test_a_spare_starts_once_its_pool_is_ready_and_is_held_not_routed() -> None:
    async with running(spare_workers=1) as h:
        await h.live()
        await settle()
        assert spare(h) is None  # the pool has not been READY yet: nothing to keep a spare of
        await ready_slot(h)
        process = await ready_spare(h)
        assert h.router.told("expect")[-1] == (SPARE, process.pid, True)
        found = spare(h)
        assert found is not None and found.state == "spare" and found in h.arbiter.all_workers()
        assert SPARE not in h.arbiter.workers and h.router.told("promote") == []


async def test_no_spare_when_spare_workers_is_0() -> None:
    async with running(spare_workers=0) as h:
        await ready_slot(h)
        await settle()
        assert h.arbiter.spares.workers() == [] and len(h.os.processes) == 1


async def test_a_dead_worker_is_replaced_by_the_spare_at_once_and_a_new_spare_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "mcp_supervisor.arbiter")
    async with running(spare_workers=1) as h:
        old = await ready_slot(h)
        kept = await ready_spare(h)
        h.clock.advance(12.0)
        old.exit(-signal.SIGKILL)
        await eventually(lambda: h.worker().pid == kept.pid, "the slot to adopt the spare")
        gone = h.router.calls.index(
            ("worker_gone", old.pid, f"worker trio-0 (pid {old.pid}) killed by SIGKILL after 12.0 s")
        )
        assert h.router.calls.index(("promote", kept.pid)) > gone  # the dead one is gone first
        worker = h.worker()
        assert worker.state == "ready" and worker.restarts == 1 and h.clock.delays_of(worker) == []
        assert (
            f"trio-0 (pid {old.pid}) killed by SIGKILL after 12.0 s; replaced by {SPARE} (pid {kept.pid})"
            in caplog.messages
        )
        fresh = await ready_spare(h, not_pid=kept.pid)  # the next spare starts at once, held
        assert h.router.told("expect")[-1] == (SPARE, fresh.pid, True)
        # the adopted process is the slot's now: its death is the slot's, and the new spare takes over
        h.clock.advance(12.0)
        kept.exit(1)
        await eventually(lambda: h.worker().pid == fresh.pid, "the slot to adopt the next spare")
        assert h.worker().restarts == 2


async def test_a_hung_worker_is_replaced_by_the_spare() -> None:
    async with running(spare_workers=1) as h:
        old = await ready_slot(h)
        kept = await ready_spare(h)
        h.arbiter.on_unresponsive(link("trio-0", old.pid))
        await eventually(lambda: h.worker().pid == kept.pid, "the slot to adopt the spare")
        assert old.signals == [signal.SIGKILL]
        assert "missing heartbeats" in (h.worker().last_exit or "")


async def test_a_slot_that_keeps_dying_waits_its_backoff_before_taking_the_spare() -> None:
    async with running(spare_workers=1) as h:
        first = await ready_slot(h)
        second = await ready_spare(h)
        first.exit(1)  # uptime 0, but the first death: the backoff is at its start
        await eventually(lambda: h.worker().pid == second.pid, "the first adoption")
        third = await ready_spare(h, not_pid=second.pid)
        second.exit(1)  # a quick second death: 0.2 s of backoff are waited first
        await eventually(lambda: h.clock.delays_of(h.worker()) == [0.2], "the backoff")
        assert h.worker().pid is None and spare(h) is not None
        h.clock.advance(0.2)
        await eventually(lambda: h.worker().pid == third.pid, "the spare after the backoff")
        assert len(h.os.processes) >= 3


async def test_a_spare_that_dies_is_started_again_and_never_fails_the_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(spare_workers=1, flap_deaths=2) as h:
        await ready_slot(h)
        pids = []
        for _ in range(3):
            process = await ready_spare(h, not_pid=pids[-1] if pids else None)
            pids.append(process.pid)
            process.exit(70)
            await eventually(lambda: (s := spare(h)) is not None and s.state == "backoff", "the rest")
            h.clock.advance(30.0)
        await ready_spare(h, not_pid=pids[-1])
        assert h.router.failed == {} and h.worker().state == "ready" and h.worker().restarts == 0
        assert len(set(pids)) == 3
        assert any("starting a new spare in" in message for message in caplog.messages)


async def test_stop_stops_a_ready_spare_with_STOP_and_kills_one_still_starting() -> None:
    async with running(spare_workers=1, workers_asyncio=1) as h:
        await ready_slot(h, "trio-0")
        trio_spare = await ready_spare(h)
        await ready_slot(h, "asyncio-0")
        await eventually(
            lambda: any(w.worker_id == "asyncio-spare-0" and w.pid for w in h.arbiter.spares.workers()),
            "the asyncio spare to start",
        )
        starting = next(w for w in h.arbiter.spares.workers() if w.worker_id == "asyncio-spare-0")
        assert isinstance(starting.process, FakeProcess)
        starting_process = starting.process
        assert await h.arbiter.stop(5.0) is True
        assert (trio_spare.pid, "supervisor stopping") in h.router.told("stop")
        assert trio_spare.signals == [] and trio_spare.returncode == 0
        assert starting_process.signals == [signal.SIGKILL]
        assert h.arbiter.spares.workers() == []
        count = len(h.os.processes)
        h.clock.advance(60)
        await settle()
        assert len(h.os.processes) == count  # nothing started again


async def test_stop_drains_the_calls_while_a_spare_takes_its_time_to_exit() -> None:
    # the calls' grace counts from the stop, not from when the spares are gone (a slow spare made
    # uvicorn's own shutdown cancel a call before the drain could count it as cut)
    async with running(spare_workers=1) as h:
        slot = await ready_slot(h)
        slow = await ready_spare(h)
        h.os.ignore_stop.add(slow.pid)  # exits only when killed, STOP_WAIT after its STOP
        h.router.in_flight[slot.pid] = {7}
        stopping = asyncio.ensure_future(h.arbiter.stop(5.0))
        await eventually(lambda: (slot.pid,) in h.router.told("drain"), "the slot's calls to drain")
        assert (slow.pid, "supervisor stopping") in h.router.told("stop") and slow.returncode is None
        h.router.in_flight[slot.pid] = set()
        h.clock.advance(0.02)
        assert await stopping is True  # the spare was killed: not a call cut short
        assert slow.signals == [signal.SIGKILL]
        # the spares' own stop drained and stopped it, not the calls' drain too
        assert h.router.told("drain").count((slow.pid,)) == 1
        assert h.router.told("stop").count((slow.pid, "supervisor stopping")) == 1


async def test_a_reload_replaces_the_spare_and_scaling_to_zero_stops_it() -> None:
    async with running(spare_workers=1) as h:
        await ready_slot(h)
        old_spare = await ready_spare(h)
        task = asyncio.ensure_future(h.arbiter.reload(settings(spare_workers=1, worker_threads=3)))
        await eventually(
            lambda: bool(h.arbiter.candidates) and h.arbiter.candidates[0].pid is not None, "the candidate"
        )
        candidate = h.arbiter.candidates[0]
        assert candidate.pid is not None
        h.arbiter.on_ready(link("trio-0", candidate.pid))
        assert await task is None
        assert (old_spare.pid, "replaced") in h.router.told("stop")
        new_spare = await ready_spare(h, not_pid=old_spare.pid)
        found = spare(h)
        assert found is not None and found.argv[found.argv.index("--threads") + 1] == "3"
        assert await h.arbiter.scale("trio", 0) is None
        assert (new_spare.pid, "replaced") in h.router.told("stop")
        assert h.arbiter.spares.workers() == []


async def test_an_adopted_spares_life_counts_from_its_adoption_not_its_start() -> None:
    async with running(spare_workers=1) as h:
        first = await ready_slot(h)
        second = await ready_spare(h)
        h.clock.advance(12.0)  # both up 12 s; only the first served them
        first.exit(1)
        await eventually(lambda: h.worker().pid == second.pid, "the first adoption")
        await ready_spare(h, not_pid=second.pid)
        second.exit(1)  # died at once after its adoption: a quick death, the backoff grows
        await eventually(lambda: h.clock.delays_of(h.worker()) == [0.2], "the grown backoff")
