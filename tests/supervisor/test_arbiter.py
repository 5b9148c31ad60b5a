"""The arbiter on a fake process table and a fake clock: what it does when a worker dies (the router is
told, the slot waits its backoff, a flapping slot rests), how it stops workers (STOP, then SIGKILL), and
how it replaces one without dropping it first.

No process is started and nothing sleeps: ``FakeOS.spawn`` is the arbiter's ``spawn`` seam and hands out
``FakeProcess``es that exit when the test says so; ``FakeClock`` moves only when the test advances it.
(There is no ``waitpid`` loop to mock: the arbiter learns of a death from ``process.wait()``, which the
event loop's child watcher answers; ``FakeProcess.wait`` stands in for it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from supervisor import draining as draining_module
from supervisor import scaling
from supervisor.arbiter import Arbiter
from supervisor.config import Settings
from supervisor.process import WorkerProcess
from supervisor.recent_errors import RecentErrors
from supervisor.router import WorkerLink

pytestmark = pytest.mark.anyio

DEADLINE = 5.0
"""Longest real time a test waits for the arbiter to get somewhere."""


class FakeClock:
    """Monotonic time that moves only when the test calls ``advance``; ``sleep`` waits for it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[tuple[asyncio.Task[Any] | None, float]] = []
        """Every sleep asked for: (the task that asked, seconds)."""
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append((asyncio.current_task(), seconds))
        wake = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, wake))
        try:
            await wake
        finally:
            self._sleepers = [(at, future) for at, future in self._sleepers if future is not wake]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for at, future in self._sleepers:
            if at <= self.now + 1e-9 and not future.done():  # 0.1 + 0.2 != 0.3
                future.set_result(None)

    def delays_of(self, worker: WorkerProcess) -> list[float]:
        """What the slot's supervising task waited between deaths and starts."""
        return [seconds for task, seconds in self.sleeps if task is worker.task]


class FakeProcess:
    """Stands in for ``asyncio.subprocess.Process``: exits when the test says so, or on SIGKILL."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.signals: list[int] = []
        self._exited = asyncio.Event()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL:
            self.exit(-signal.SIGKILL)

    def exit(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._exited.set()


class FakeOS:
    """A process table: ``spawn`` (the arbiter's seam) gives a worker a ``FakeProcess`` with a new pid."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.processes: dict[int, FakeProcess] = {}
        self.ignore_stop: set[int] = set()
        """Pids whose process does not exit on STOP."""
        self.refuse_next: OSError | None = None
        self._pids = itertools.count(4_000_001)  # above Linux's pid_max: never a real process

    async def spawn(self, worker: WorkerProcess) -> int:
        if self.refuse_next is not None:
            error, self.refuse_next = self.refuse_next, None
            raise error
        process = FakeProcess(next(self._pids))
        self.processes[process.pid] = process
        worker.process = process
        worker.started_at = self.clock.monotonic()
        worker.ready_at = None
        worker.state = "starting"
        return process.pid


class FakeRouter:
    """Records what the arbiter tells the router; STOP makes a fake process exit (unless it ignores it)."""

    endpoint = "ipc:///nonexistent/router.sock"

    def __init__(self, processes: FakeOS) -> None:
        self.os = processes
        self.calls: list[tuple[Any, ...]] = []
        self.failed: dict[str, str] = {}
        self.in_flight: dict[int, set[int]] = {}
        """Calls running on a pid, as ``links()`` reports them."""
        self.own_requests: dict[int, int] = {}
        """Requests a pid made on its own behalf being answered (the task queue's task runs)."""
        self.running: set[int] = set()
        """Pids that die with tool calls in flight (``worker_gone`` says so)."""
        self.deaths: list[int] = []
        """Pids whose exit ``worker_gone`` was told is a death (a crash, not a stop)."""
        self.recent_errors = RecentErrors()

    def expect(self, worker_id: str, pid: int, *, held: bool = False) -> None:
        self.calls.append(("expect", worker_id, pid, held))

    def promote(self, pid: int) -> None:
        self.calls.append(("promote", pid))

    def worker_gone(self, pid: int, reason: str, *, death: bool = False) -> bool:
        self.calls.append(("worker_gone", pid, reason))
        if death:
            self.deaths.append(pid)
        return pid in self.running

    def set_pool_failed(self, pool: str, reason: str | None) -> None:
        if reason is None:
            self.failed.pop(pool, None)
        else:
            self.failed[pool] = reason

    def drain(self, pid: int) -> None:
        self.calls.append(("drain", pid))

    def stop(self, pid: int, reason: str) -> None:
        self.calls.append(("stop", pid, reason))
        if pid not in self.os.ignore_stop:
            self.os.processes[pid].exit(0)

    def link_of(self, pid: int) -> WorkerLink | None:
        return None

    def links(self) -> list[WorkerLink]:
        pids = set(self.in_flight) | set(self.own_requests)
        links = [link(f"w{pid}", pid, self.in_flight.get(pid)) for pid in sorted(pids)]
        for found in links:
            found.own_requests = self.own_requests.get(found.pid, 0)
        return links

    def told(self, what: str) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.calls if call[0] == what]


def link(worker_id: str, pid: int, in_flight: set[int] | None = None) -> WorkerLink:
    return WorkerLink(worker_id, "trio", pid, b"identity", [], [], in_flight=in_flight or set())


@dataclass
class Harness:
    arbiter: Arbiter
    clock: FakeClock
    os: FakeOS
    router: FakeRouter

    def worker(self, worker_id: str = "trio-0") -> WorkerProcess:
        return self.arbiter.workers[worker_id]

    def process(self, worker_id: str = "trio-0") -> FakeProcess:
        process = self.worker(worker_id).process
        assert isinstance(process, FakeProcess)
        return process

    async def live(self, worker_id: str = "trio-0") -> FakeProcess:
        """The slot's process, once it has one running."""
        await eventually(lambda: self.worker(worker_id).pid is not None, f"{worker_id} to run")
        return self.process(worker_id)

    async def die(self, code: int, uptime: float = 0.0, worker_id: str = "trio-0") -> float:
        """Let the slot's process run ``uptime`` seconds and exit with ``code``; returns the delay the
        slot then waits (the clock is not advanced past it)."""
        process = await self.live(worker_id)
        worker = self.worker(worker_id)
        waited = len(self.clock.delays_of(worker))
        self.clock.advance(uptime)
        process.exit(code)
        await eventually(lambda: len(self.clock.delays_of(worker)) > waited, f"{worker_id} to wait")
        return self.clock.delays_of(worker)[-1]


async def settle() -> None:
    """Let every task that can run do so (before checking that something did *not* happen)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` (letting the arbiter's tasks run) until it holds, for at most ``DEADLINE``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "workers_asyncio": 0,
        "workers_trio": 1,
        "task_queue": False,
        "pin_cpus": False,
        "restart_backoff_initial": 0.1,
        "restart_backoff_max": 0.4,
        "restart_backoff_reset": 10.0,
        "flap_deaths": 100,
        "flap_window": 60.0,
        "flap_cooldown": 30.0,
        "shutdown_grace": 5.0,
        "spare_workers": 0,  # the spares have tests of their own (test_spares.py)
    }
    return Settings(**{**values, **changes})


@contextlib.asynccontextmanager
async def running(**changes: Any) -> AsyncIterator[Harness]:
    """A started arbiter on fakes; stopped on the way out (the clock jumps so no slot stays asleep)."""
    clock = FakeClock()
    processes = FakeOS(clock)
    router = FakeRouter(processes)
    arbiter = Arbiter(
        settings(**changes), router, spawn=processes.spawn, clock=clock.monotonic, sleep=clock.sleep
    )
    arbiter.start()
    try:
        yield Harness(arbiter, clock, processes, router)
    finally:
        stopping = asyncio.ensure_future(arbiter.stop(0))
        await asyncio.sleep(0)
        clock.advance(3600)
        await stopping


@pytest.fixture(autouse=True)
def short_stop_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """STOP → SIGKILL waits real time (``asyncio.wait``): keep it short."""
    monkeypatch.setattr(draining_module, "STOP_WAIT", 0.2)


# -- a worker dies -----------------------------------------------------------------------------------------


async def test_a_death_is_told_to_the_router_at_once_and_the_slot_restarts_after_its_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "mcp_supervisor.arbiter")
    async with running() as h:
        first = await h.live()
        assert h.router.told("expect") == [("trio-0", first.pid, False)]
        assert await h.die(3, uptime=1.5) == 0.1
        worker = h.worker()
        assert worker.pid is None and worker.state == "backoff" and worker.restarts == 1
        assert worker.last_exit == "exit code 3 after 1.5 s"
        assert h.router.told("worker_gone") == [
            (first.pid, f"worker trio-0 (pid {first.pid}) exit code 3 after 1.5 s")
        ]
        deaths = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert deaths == [f"trio-0 (pid {first.pid}) exit code 3 after 1.5 s; restarting in 0.1 s"]
        noted = h.router.recent_errors.entries()
        assert [(e["kind"], e["worker"], e["pid"], e["message"]) for e in noted] == [
            ("exit", "trio-0", first.pid, "exit code 3 after 1.5 s")
        ]
        assert len(h.os.processes) == 1  # nothing starts before the backoff is over
        h.clock.advance(0.1)
        second = await h.live()
        assert second.pid != first.pid
        assert h.router.told("expect")[-1] == ("trio-0", second.pid, False)
        assert h.worker().state == "starting"


async def test_quick_deaths_double_the_backoff_up_to_the_maximum_and_a_long_life_resets_it() -> None:
    async with running(restart_backoff_initial=0.1, restart_backoff_max=0.4) as h:
        delays = []
        for uptime in (0.0, 0.0, 0.0, 0.0, 10.0):
            delays.append(await h.die(1, uptime=uptime))
            h.clock.advance(delays[-1])
        assert delays == [0.1, 0.2, 0.4, 0.4, 0.1]
        assert h.worker().restarts == 5


async def test_a_signal_death_is_named() -> None:
    async with running() as h:
        await h.die(-signal.SIGSEGV, uptime=2.0)
        assert h.worker().last_exit == "killed by SIGSEGV after 2.0 s"


async def test_a_flapping_slot_is_marked_failed_rests_the_cooldown_and_is_cleared_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(flap_deaths=3, flap_window=60.0, flap_cooldown=30.0) as h:
        assert await h.die(70) == 0.1
        h.clock.advance(0.1)
        assert await h.die(70) == 0.2
        h.clock.advance(0.2)
        assert "trio" not in h.router.failed
        assert await h.die(70) == 30.0
        assert h.worker().state == "failed"
        assert h.router.failed == {"trio": "every trio worker is failing: exit code 70 after 0.0 s"}
        assert (
            "trio-0 died 3 times in 60 s (last: exit code 70 after 0.0 s); resting 30 s before trying again"
            in caplog.messages
        )
        h.clock.advance(29.9)
        await settle()
        assert len(h.os.processes) == 3  # still resting
        h.clock.advance(0.1)
        await h.live()
        # the count started over: the next death is an ordinary one, and the mark is lifted after it
        assert await h.die(70) == 0.1
        h.clock.advance(0.1)
        await h.live()
        assert h.router.failed == {}


async def test_issue_17_deaths_with_tool_calls_in_flight_grow_the_backoff_but_never_rest_the_slot() -> None:
    """Such deaths are the quarantine's (the router charges the tools that were running): one tool that
    keeps crashing its worker must not rest the whole runtime for flap_cooldown. The backoff still grows."""
    async with running(flap_deaths=3, flap_window=60.0, flap_cooldown=30.0) as h:
        delays = []
        for _ in range(5):
            process = await h.live()
            h.router.running.add(process.pid)
            delays.append(await h.die(-signal.SIGSEGV))
            h.clock.advance(delays[-1])
        assert delays == [0.1, 0.2, 0.4, 0.4, 0.4]
        assert h.worker().state != "failed" and h.router.failed == {}
        assert len(h.router.deaths) == 5  # each one told to the router as a death, for the quarantine
        # deaths with nothing in flight still rest the slot after flap_deaths of them, counted alone
        for _ in range(2):
            assert await h.die(70) == 0.4
            h.clock.advance(0.4)
        assert await h.die(70) == 30.0
        assert h.worker().state == "failed"


async def test_one_flapping_slot_does_not_fail_a_runtime_whose_other_slot_serves() -> None:
    async with running(workers_trio=2, flap_deaths=2) as h:
        await h.live("trio-1")
        await h.die(70, worker_id="trio-0")
        h.clock.advance(0.1)
        assert await h.die(70, worker_id="trio-0") == 30.0
        assert h.worker("trio-0").state == "failed"
        assert h.router.failed == {}


async def test_a_worker_that_cannot_be_started_counts_as_a_death(caplog: pytest.LogCaptureFixture) -> None:
    async with running() as h:
        first = await h.live()
        h.os.refuse_next = OSError("no interpreter")
        assert await h.die(1) == 0.1
        h.clock.advance(0.1)
        await eventually(lambda: h.clock.delays_of(h.worker()) == [0.1, 0.2], "the failed start to wait")
        worker = h.worker()
        assert worker.last_exit == "could not start: no interpreter" and worker.restarts == 2
        assert [pid for pid, _ in h.router.told("worker_gone")] == [first.pid]  # no process, nothing gone
        assert "trio-0 could not start: no interpreter" in caplog.messages
        assert [(e["worker"], e["pid"], e["message"]) for e in h.router.recent_errors.entries()] == [
            ("trio-0", None, "could not start: no interpreter"),
            ("trio-0", first.pid, "exit code 1 after 0.0 s"),
        ]


async def test_an_unresponsive_worker_is_killed_and_its_exit_says_why() -> None:
    async with running() as h:
        process = await h.live()
        h.arbiter.on_unresponsive(link("trio-0", process.pid))
        await eventually(lambda: h.worker().state == "backoff", "the death to be seen")
        assert process.signals == [signal.SIGKILL]
        assert h.worker().last_exit == (
            "killed after missing heartbeats (event loop blocked or process stopped): "
            "killed by SIGKILL after 0.0 s"
        )


async def test_ready_marks_the_worker_ready_and_a_stranger_is_ignored() -> None:
    async with running() as h:
        process = await h.live()
        h.arbiter.on_ready(link("trio-0", 12345))
        assert h.worker().state == "starting"
        h.clock.advance(0.5)
        h.arbiter.on_ready(link("trio-0", process.pid))
        assert h.worker().state == "ready" and h.worker().ready_at == h.clock.now


# -- stopping ------------------------------------------------------------------------------------------


async def test_stop_sends_STOP_and_workers_that_obey_are_neither_killed_nor_restarted() -> None:
    async with running(workers_asyncio=1) as h:
        processes = [await h.live("asyncio-0"), await h.live("trio-0")]
        assert await h.arbiter.stop(5.0) is True
        pids = sorted(p.pid for p in processes)
        assert sorted(pid for pid, _ in h.router.told("stop")) == pids
        assert {reason for _, reason in h.router.told("stop")} == {"supervisor stopping"}
        assert sorted(pid for (pid,) in h.router.told("drain")) == pids
        assert all(p.signals == [] for p in processes)
        assert {w.state for w in h.arbiter.all_workers()} == {"stopped"}
        assert (pids[0], f"worker pid {pids[0]} stopped: supervisor stopping") in h.router.told("worker_gone")
        assert h.router.deaths == []  # a stop is not a crash: nothing is charged to a tool
        assert len(h.os.processes) == 2 and h.clock.delays_of(h.worker()) == []
        assert h.router.recent_errors.entries() == []  # a stop asked for is not an error


async def test_stop_kills_a_worker_that_ignores_STOP_and_says_it_was_not_clean() -> None:
    async with running() as h:
        process = await h.live()
        h.os.ignore_stop.add(process.pid)
        assert await h.arbiter.stop(5.0) is False
        assert h.router.told("stop") == [(process.pid, "supervisor stopping")]
        assert process.signals == [signal.SIGKILL] and process.returncode == -signal.SIGKILL
        assert len(h.os.processes) == 1


async def test_stop_waits_for_calls_in_flight_before_STOP() -> None:
    async with running() as h:
        process = await h.live()
        h.router.in_flight[process.pid] = {7}
        stopping = asyncio.ensure_future(h.arbiter.stop(5.0))
        await eventually(lambda: h.router.told("drain") == [(process.pid,)], "the worker to be drained")
        h.clock.advance(1.0)
        await settle()
        assert h.router.told("stop") == [] and not stopping.done()
        h.router.in_flight[process.pid] = set()  # the call finished
        h.clock.advance(0.02)
        assert await stopping is True
        assert h.router.told("stop") == [(process.pid, "supervisor stopping")]


async def test_stop_waits_for_the_task_runs_a_worker_asked_for_before_STOP() -> None:
    async with running() as h:
        process = await h.live()
        h.router.own_requests[process.pid] = 1  # the task queue's run of a task, on another worker
        stopping = asyncio.ensure_future(h.arbiter.stop(5.0))
        await eventually(lambda: h.router.told("drain") == [(process.pid,)], "the worker to be drained")
        h.clock.advance(1.0)
        await settle()
        assert h.router.told("stop") == [] and not stopping.done()
        h.router.own_requests[process.pid] = 0
        h.clock.advance(0.02)
        assert await stopping is True


async def test_calls_that_outlive_the_grace_are_cut_and_the_stop_is_not_clean() -> None:
    async with running() as h:
        process = await h.live()
        h.router.in_flight[process.pid] = {7}
        stopping = asyncio.ensure_future(h.arbiter.stop(5.0))
        await eventually(lambda: bool(h.router.told("drain")), "the worker to be drained")
        h.clock.advance(5.0)
        assert await stopping is False
        assert h.router.told("stop") == [(process.pid, "supervisor stopping")]
        assert process.signals == []  # it obeyed STOP: cut short, not killed


# -- replacing -----------------------------------------------------------------------------------------


async def test_restart_keeps_the_old_worker_until_the_new_one_is_ready() -> None:
    async with running() as h:
        old = await h.live()
        old_worker = h.worker()
        restarting = asyncio.ensure_future(h.arbiter.restart("trio"))
        await eventually(lambda: len(h.os.processes) == 2, "the candidate to start")
        new = next(p for pid, p in h.os.processes.items() if pid != old.pid)
        assert h.router.told("expect")[-1] == ("trio-0", new.pid, True)  # held: not routed to yet
        await settle()
        assert h.router.told("drain") == [] and not restarting.done()
        h.arbiter.on_ready(link("trio-0", new.pid))
        assert await restarting is None
        assert h.router.told("promote") == [(new.pid,)]
        assert h.router.told("drain") == [(old.pid,)]
        assert h.router.told("stop") == [(old.pid, "replaced")]
        assert h.process() is new and h.worker().state == "ready"
        assert old_worker.state == "stopped" or old_worker.retiring
        assert h.clock.delays_of(old_worker) == [] and old_worker.restarts == 0  # not a death


async def test_a_candidate_that_dies_before_ready_abandons_the_restart() -> None:
    async with running() as h:
        old = await h.live()
        restarting = asyncio.ensure_future(h.arbiter.restart("trio-0"))
        await eventually(lambda: len(h.os.processes) == 2, "the candidate to start")
        new = next(p for pid, p in h.os.processes.items() if pid != old.pid)
        new.exit(1)
        assert await restarting == "trio-0 did not start: exit code 1 after 0.0 s"
        assert h.process() is old and old.returncode is None
        assert h.router.told("stop") == [] and h.router.told("promote") == []
        assert len(h.os.processes) == 2  # a failed candidate is not restarted
        assert await h.arbiter.restart("go") == "no runtime or worker called 'go'"


async def test_issue_17_scaling_a_runtime_to_zero_stops_its_workers_and_back_up_starts_them() -> None:
    """Issue 17: ``ctl scale trio 0`` failed with "Set of Tasks/Futures is empty" (nothing to start)."""
    async with running(workers_trio=2) as h:
        first, second = await h.live("trio-0"), await h.live("trio-1")
        assert await h.arbiter.scale("trio", 0) is None
        assert sorted(h.router.told("stop")) == sorted([(first.pid, "replaced"), (second.pid, "replaced")])
        assert h.arbiter.workers == {} and h.arbiter.settings.workers_trio == 0

        scaling = asyncio.ensure_future(h.arbiter.scale("trio", 1))
        await eventually(lambda: len(h.os.processes) == 3, "the new worker to start")
        new = max(h.os.processes)
        h.arbiter.on_ready(link("trio-0", new))
        assert await scaling is None
        assert h.worker("trio-0").pid == new and h.worker("trio-0").state == "ready"


async def test_issue_17_a_failed_pool_scaled_to_zero_is_no_longer_failed() -> None:
    """The /ui page and ``ctl status`` said "failed" for a resting pool once scaled to 0: the mark stayed."""
    async with running(flap_deaths=2) as h:
        await h.die(70)
        h.clock.advance(0.1)
        assert await h.die(70) == 30.0
        assert h.router.failed == {"trio": "every trio worker is failing: exit code 70 after 0.0 s"}
        assert await h.arbiter.scale("trio", 0) is None
        assert h.arbiter.workers == {} and h.router.failed == {}


async def test_a_scale_up_starts_its_workers_a_batch_at_a_time_issue_17(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On 2 cores, one new worker at a time: the next starts once the previous one is READY."""
    monkeypatch.setattr(scaling, "usable_cores", lambda: 2)
    async with running() as h:
        old = await h.live()
        scaling_up = asyncio.ensure_future(h.arbiter.scale("trio", 3))
        await eventually(lambda: len(h.os.processes) == 2, "the first new worker to start")
        await settle()
        assert len(h.os.processes) == 2  # the second waits for the first
        first = max(h.os.processes)
        h.arbiter.on_ready(link("trio-1", first))
        await eventually(lambda: len(h.os.processes) == 3, "the second new worker to start")
        h.arbiter.on_ready(link("trio-2", max(h.os.processes)))
        assert await scaling_up is None
        assert sorted(h.arbiter.workers) == ["trio-0", "trio-1", "trio-2"]
        assert h.process() is old and old.returncode is None


async def test_a_scale_up_whose_later_batch_fails_leaves_the_running_workers_alone_issue_17(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scaling, "usable_cores", lambda: 2)
    async with running() as h:
        old = await h.live()
        scaling_up = asyncio.ensure_future(h.arbiter.scale("trio", 3))
        await eventually(lambda: len(h.os.processes) == 2, "the first new worker to start")
        first = h.os.processes[max(h.os.processes)]
        h.arbiter.on_ready(link("trio-1", first.pid))
        await eventually(lambda: len(h.os.processes) == 3, "the second new worker to start")
        h.os.processes[max(h.os.processes)].exit(1)
        assert (await scaling_up or "").startswith("trio-2 did not start: exit code 1")
        assert list(h.arbiter.workers) == ["trio-0"] and h.process() is old and old.returncode is None
        assert first.returncode is not None  # the READY candidate of the abandoned scale is stopped
        assert h.router.told("promote") == [] and h.router.told("drain") == [(first.pid,)]


async def test_a_slots_restart_total_never_goes_down_when_its_process_is_replaced_issue_17() -> None:
    """``worker_restarts_total`` is a Prometheus counter: a reload or a restart replaces the slot's
    process (whose own ``restarts`` starts at 0) but the slot's total keeps what it had."""
    async with running() as h:
        await h.live()
        h.clock.advance(await h.die(1, uptime=0.5))
        h.clock.advance(await h.die(1, uptime=0.5))
        before = h.worker()
        assert before.restarts == 2 and h.arbiter.restarts_total(before) == 2
        await h.live()
        started = len(h.os.processes)
        restarting = asyncio.ensure_future(h.arbiter.restart("trio"))
        await eventually(lambda: len(h.os.processes) == started + 1, "the candidate to start")
        new = list(h.os.processes.values())[-1]
        h.arbiter.on_ready(link("trio-0", new.pid))
        assert await restarting is None
        after = h.worker()
        assert after is not before and after.restarts == 0
        assert h.arbiter.restarts_total(after) == 2
        h.clock.advance(await h.die(1, uptime=0.5))
        assert h.arbiter.restarts_total(h.worker()) == 3


async def test_scaling_one_pool_leaves_the_other_pools_workers_on_their_cores_issue_17() -> None:
    """Scaling asyncio to 0 moved trio-0's planned core (the slots are spread round-robin), so trio-0 was
    restarted too, and while trio was failing the scale failed with "trio-0 did not start"."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two usable cores: with one, no slot's core moves")
    async with running(workers_asyncio=1, workers_trio=1, pin_cpus=True) as h:
        await h.live("asyncio-0")
        trio = await h.live("trio-0")
        before = h.worker("trio-0")
        assert await h.arbiter.scale("asyncio", 0) is None
        assert h.worker("trio-0") is before and h.process("trio-0") is trio
        assert [pid for pid, *_ in h.router.told("stop")] == [
            p.pid for p in h.os.processes.values() if p is not trio
        ]
