"""The paths the hop benchmark measures, and how: each path is a ``Probe`` (one round trip; many
pipelined) set up by a context manager that also tears it down, stopping its children by pid.

Paths (``benchmarks.hop`` describes what each one tells):

- ``echo_probe``: a ROUTER configured and driven like ``Router``, and an echo child (``benchmarks.echo_peer``);
- ``router_only_probe``: a real ``Router`` in front of the stand-in worker of ``benchmarks.echo_peer``;
- ``worker_only_probes``: a bare ROUTER (encode CALL, decode RESULT, heartbeats) in front of real workers;
- ``hop_probes``: a real ``Router`` and real workers, READY awaited as the arbiter awaits it.

``measure`` warms every path up, then times them all in interleaved rounds (every path in turn, in a
rotating order), so that a change in the machine's load weighs on every path alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.asyncio

from benchmarks.echo_peer import OK_RESULT, STOP
from benchmarks.lib.children import Children, first_or_death, tail
from benchmarks.lib.hop_peers import (
    TOOLS,
    make_router,
    reap_workers,
    router_socket,
    send_nowait,
    spawn_echo,
    spawn_workers,
    worker_processes,
)
from benchmarks.lib.machine import cpu_seconds, own_cpu_seconds
from benchmarks.lib.running import LOG
from benchmarks.lib.stats import Latency, Throughput
from benchmarks.lib.timing import concurrent_callers, rotations, sequential, share, window
from shared.protocol import Call, Heartbeat, Message, Ready, Result, Stop, decode, encode
from supervisor.config import Settings
from supervisor.draining import STOP_WAIT
from supervisor.process import WorkerProcess
from supervisor.router import Router, WorkerLink

READY_DEADLINE = 30.0
"""Longest a child gets to connect (echo) or to send READY (worker)."""
CALL_TIMEOUT = 10.0
ROUND_WARMUP = 50
"""Untimed round trips on a path at the start of each round (the path sat idle while the others ran)."""


@dataclass(frozen=True)
class Budget:
    """How much every path is measured (the options of ``python -m benchmarks.hop``, with its defaults)."""

    calls: int = 5000
    """Timed sequential round trips per path, over all rounds."""
    warmup: int = 500
    """Untimed round trips per path before the rounds."""
    pipelined: int = 20000
    """Pipelined calls per path, over all rounds."""
    concurrency: int = 32
    """Calls in flight in the pipelined runs."""
    rounds: int = 5
    phase_seconds: float = 5.0
    """Upper bound of the time spent timing each path."""


@dataclass(eq=False)
class Probe:
    """One measured path: how to make one round trip, how to pipeline many, and what was measured."""

    key: str
    name: str
    note: str
    peer: int
    """The child whose CPU time is recorded with this path's."""
    round_trip: Callable[[], Awaitable[object]]
    pipelined: Callable[[int, float], Awaitable[tuple[int, float]]]
    """``(count, budget)`` → calls made and seconds taken, with the budget's concurrency in flight."""
    samples: list[float] = field(default_factory=list)
    cpu_self: float = 0.0
    cpu_peer: float = 0.0
    piped_calls: int = 0
    piped_seconds: float = 0.0
    piped_requested: int = 0

    def latency(self) -> Latency:
        n = len(self.samples) or 1
        return Latency(self.name, self.samples, self.note, (self.cpu_self * 1e6 / n, self.cpu_peer * 1e6 / n))

    def throughput(self, concurrency: int) -> Throughput:
        return Throughput(self.name, concurrency, self.piped_calls, self.piped_seconds, self.piped_requested)


async def measure(probes: list[Probe], budget: Budget) -> None:
    """Warm every path up, then time them all in ``budget.rounds`` interleaved rounds."""
    for probe in probes:
        for _ in range(budget.warmup):
            await probe.round_trip()
        await probe.pipelined(min(budget.warmup, budget.pipelined), budget.phase_seconds)
    # Each round gives every path half its share of the time for the sequential loop, half for the pipelined one.
    seconds = budget.phase_seconds / budget.rounds / 2
    for index, order in enumerate(rotations(probes, budget.rounds)):
        calls = share(budget.calls, budget.rounds, index)
        pipelined = share(budget.pipelined, budget.rounds, index)
        for probe in order:
            for _ in range(ROUND_WARMUP):
                await probe.round_trip()
            before = own_cpu_seconds(), cpu_seconds(probe.peer)
            probe.samples += await sequential(probe.round_trip, calls, seconds)
            probe.cpu_self += own_cpu_seconds() - before[0]
            probe.cpu_peer += cpu_seconds(probe.peer) - before[1]
            done, took = await probe.pipelined(pipelined, seconds)
            probe.piped_calls += done
            probe.piped_seconds += took
            probe.piped_requested += pipelined


@contextlib.asynccontextmanager
async def echo_probe(
    mode: str, name: str, tmp: Path, children: Children, cpu: int | None, payload: bytes, concurrency: int
) -> AsyncIterator[Probe]:
    """A bare ROUTER in this process sending ``payload`` to an echo child in ``mode``, which sends it back."""
    endpoint = f"ipc://{tmp}/echo-{mode}.ipc"
    context = zmq.asyncio.Context()
    socket = router_socket(context, endpoint)
    log_path = tmp / f"echo-{mode}.log"
    identity: bytes | None = None
    processes: list[asyncio.subprocess.Process] = []
    try:
        processes.append(await spawn_echo(endpoint, mode, cpu, log_path, children))
        identity, _hello = await first_or_death(
            socket.recv_multipart(), processes, f"echo child ({mode})", lambda: tail(log_path), READY_DEADLINE
        )
        frames = (identity, payload)

        def send_one() -> None:
            send_nowait(socket, frames)

        async def receive_one() -> None:
            await socket.recv_multipart(copy=True)  # as Router._receive_loop

        async def round_trip() -> None:
            send_one()
            await receive_one()

        async def pipelined(count: int, budget: float) -> tuple[int, float]:
            return await window(send_one, receive_one, count, concurrency, budget)

        note = f"child on cpu {cpu}" if cpu is not None else ""
        yield Probe(f"echo-{mode}", name, note, processes[0].pid, round_trip, pipelined)
    finally:
        children.stopping(processes)
        if identity is not None:
            send_nowait(socket, (identity, STOP))
        await children.stop(processes, STOP_WAIT)
        socket.close(linger=0)
        context.term()


async def router_probe(
    router: Router, tool: str, key: str, name: str, note: str, peer: int, concurrency: int
) -> Probe:
    """A path through ``router.call(tool)``.

    Raises:
        RuntimeError: the tool does not answer ok.
    """
    answer = await router.call(tool, {}, timeout=CALL_TIMEOUT)
    if answer != OK_RESULT:
        raise RuntimeError(f"{tool} answered {answer!r}")

    async def round_trip() -> object:
        return await router.call(tool, {}, timeout=CALL_TIMEOUT)

    async def pipelined(count: int, budget: float) -> tuple[int, float]:
        return await concurrent_callers(round_trip, count, concurrency, budget)

    return Probe(key, name, note, peer, round_trip, pipelined)


@contextlib.asynccontextmanager
async def hop_probes(
    tmp: Path, children: Children, settings: Settings, concurrency: int
) -> AsyncIterator[tuple[list[Probe], dict[str, float]]]:
    """The real hop: a real ``Router`` and real workers. Yields a probe for the first worker of each
    runtime, and each worker's spawn → READY seconds."""
    endpoint = f"ipc://{tmp}/router.ipc"
    workers = worker_processes(settings, endpoint)
    by_id = {worker.worker_id: worker for worker in workers}
    ready = {worker.worker_id: asyncio.Event() for worker in workers}

    def on_ready(link: WorkerLink) -> None:
        worker = by_id.get(link.worker_id)
        if worker is not None and worker.pid == link.pid:  # as Arbiter.on_ready
            worker.ready_at = time.monotonic()
            ready[link.worker_id].set()

    runtimes = [runtime for runtime, count in settings.worker_counts().items() if count > 0]
    router = make_router(endpoint, runtimes, settings, on_ready)
    await router.start()
    processes: list[asyncio.subprocess.Process] = []
    try:
        await spawn_workers(workers, children, router, processes)
        for worker in workers:
            await first_or_death(
                ready[worker.worker_id].wait(),
                processes,
                f"worker {worker.worker_id}",
                LOG.tail,
                READY_DEADLINE,
            )
        startup = {w.worker_id: (w.ready_at or math.nan) - w.started_at for w in workers}
        probes: dict[str, Probe] = {}
        for worker in workers:
            if worker.runtime in probes:
                continue
            assert worker.process is not None
            tool = TOOLS[worker.runtime]
            name = f'**hop**: `router.call("{tool}")` → {worker.runtime} worker'
            note = f"worker on cpu {worker.cpu}" if worker.cpu is not None else ""
            probes[worker.runtime] = await router_probe(
                router, tool, f"hop-{worker.runtime}", name, note, worker.process.pid, concurrency
            )
        yield list(probes.values()), startup
        for link in router.links():
            if link.calls_failed:
                raise RuntimeError(f"{link.calls_failed} call(s) to {link.worker_id} failed")
    finally:
        children.stopping(processes)
        for worker in workers:
            if worker.process is not None:
                router.stop(worker.process.pid, "benchmark finished")
        await children.stop(processes, STOP_WAIT)  # STOP_WAIT for each to exit, then SIGKILL by pid
        await reap_workers(workers)
        await router.aclose()


@contextlib.asynccontextmanager
async def router_only_probe(
    tmp: Path, children: Children, settings: Settings, cpu: int | None, concurrency: int
) -> AsyncIterator[Probe]:
    """A real ``Router`` in front of a stand-in worker (blocking pyzmq, decode CALL, encode RESULT)."""
    endpoint = f"ipc://{tmp}/standin.ipc"
    ready = asyncio.Event()
    router = make_router(endpoint, ["asyncio"], settings, lambda link: ready.set())
    await router.start()
    processes: list[asyncio.subprocess.Process] = []
    log_path = tmp / "standin.log"
    try:
        processes.append(await spawn_echo(endpoint, "standin", cpu, log_path, children))
        router.expect("standin-0", processes[0].pid)
        await first_or_death(
            ready.wait(), processes, "stand-in worker", lambda: tail(log_path), READY_DEADLINE
        )
        name = "router only: `router.call` → stand-in worker on blocking pyzmq"
        note = "stand-in decodes CALL, encodes RESULT" + (f"; on cpu {cpu}" if cpu is not None else "")
        yield await router_probe(
            router, "noop_asyncio", "router-only", name, note, processes[0].pid, concurrency
        )
    finally:
        children.stopping(processes)
        for process in processes:
            router.stop(process.pid, "benchmark finished")
        await children.stop(processes, STOP_WAIT)
        await router.aclose()


@contextlib.asynccontextmanager
async def worker_only_probes(
    tmp: Path, children: Children, settings: Settings, concurrency: int
) -> AsyncIterator[list[Probe]]:
    """Real workers behind a bare ROUTER that only encodes CALL, decodes RESULT and sends heartbeats."""
    endpoint = f"ipc://{tmp}/bare-router.ipc"
    context = zmq.asyncio.Context()
    socket = router_socket(context, endpoint)
    workers = worker_processes(settings, endpoint)
    identities: dict[str, bytes] = {}
    call_ids = itertools.count(1)
    processes: list[asyncio.subprocess.Process] = []

    def send(identity: bytes, message: Message) -> None:
        send_nowait(socket, (identity, encode(message)))

    async def heartbeats() -> None:
        while True:
            await asyncio.sleep(settings.heartbeat_interval)
            for identity in identities.values():
                send(identity, Heartbeat(0))

    async def next_result() -> None:
        while not isinstance(decode((await socket.recv_multipart(copy=True))[1]), Result):
            pass  # a heartbeat

    async def readies() -> None:
        while len(identities) < len(workers):
            identity, frame = await socket.recv_multipart(copy=True)
            message = decode(frame)
            if isinstance(message, Ready):
                identities[message.pool] = identity

    def probe(worker: WorkerProcess) -> Probe:
        identity = identities[worker.runtime]
        tool = TOOLS[worker.runtime]

        def send_call() -> None:
            send(identity, Call(next(call_ids), tool, {}, CALL_TIMEOUT, None, None))

        async def round_trip() -> None:
            send_call()
            await next_result()

        async def pipelined(count: int, budget: float) -> tuple[int, float]:
            return await window(send_call, next_result, count, concurrency, budget)

        name = f"worker only: bare ROUTER → real {worker.runtime} worker (`{tool}`)"
        note = "encode CALL, decode RESULT" + (
            f"; worker on cpu {worker.cpu}" if worker.cpu is not None else ""
        )
        assert worker.process is not None
        return Probe(f"worker-only-{worker.runtime}", name, note, worker.process.pid, round_trip, pipelined)

    beating: asyncio.Task[None] | None = None
    try:
        await spawn_workers(workers, children, None, processes)
        await first_or_death(readies(), processes, "workers (bare router)", LOG.tail, READY_DEADLINE)
        beating = asyncio.create_task(heartbeats())
        probes: dict[str, Probe] = {}
        for worker in workers:
            if worker.runtime not in probes:  # the first worker of each runtime
                probes[worker.runtime] = probe(worker)
        yield list(probes.values())
    finally:
        children.stopping(processes)
        if beating is not None:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
        for identity in identities.values():
            send(identity, Stop("benchmark finished"))
        await children.stop(processes, STOP_WAIT)
        await reap_workers(workers)
        socket.close(linger=0)
        context.term()
