"""Both ends of a router⇄worker hop, set up as the supervisor sets them up: a ``Router`` or a bare
ROUTER socket with the router's options on one side; on the other, worker processes with the argv, cores
and environment ``Arbiter`` gives them, or an echo child (``benchmarks.echo_peer``).

Every child is registered in the caller's ``Children`` as soon as it exists, so it is stopped whatever
happens next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import zmq
import zmq.asyncio

from benchmarks.lib.children import Children, start_child
from supervisor.arbiter import Arbiter
from supervisor.config import Settings
from supervisor.draining import STOP_WAIT
from supervisor.process import WorkerProcess
from supervisor.router import Router, WorkerLink

logger = logging.getLogger("benchmarks.hop")

TOOLS_MODULE = "benchmarks.noop_tools"
TOOLS = {"asyncio": "noop_asyncio", "trio": "noop_trio"}
"""The tool of each runtime that ``benchmarks.noop_tools`` defines."""
ROUTER_HWM = 100_000
"""The send and receive high-water marks ``Router.start`` sets."""


def hop_settings(pin: bool = True) -> Settings:
    """Default ``Settings`` with the no-op tools, and without the task-queue worker: a hop measures one
    asyncio and one Trio worker, and a task queue would share the user's database with any supervisor
    (or other benchmark run) already using it, and be one more busy process on a 2-core machine."""
    return Settings.model_validate({"tools": [TOOLS_MODULE], "pin_cpus": pin, "task_queue": False})


class _EndpointOnly:
    """All ``Arbiter`` reads from its router while building argv: the endpoint."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint


def worker_processes(settings: Settings, endpoint: str) -> list[WorkerProcess]:
    """The worker slots ``Arbiter`` would supervise for ``settings`` (its argv, its cores), not started."""
    return list(Arbiter(settings, cast(Router, _EndpointOnly(endpoint))).workers.values())


def first_cpus(settings: Settings) -> dict[str, int | None]:
    """Runtime → the core of its first worker (``None`` unpinned): where a stand-in for it should run."""
    return {worker.runtime: worker.cpu for worker in reversed(worker_processes(settings, "ipc://unused"))}


async def spawn_workers(
    workers: list[WorkerProcess],
    children: Children,
    router: Router | None,
    processes: list[asyncio.subprocess.Process],
) -> None:
    """Spawn each worker as ``Arbiter._supervise`` does (``WorkerProcess.spawn``, then ``router.expect``),
    appending each process to ``processes`` as soon as it exists."""
    for worker in workers:
        pid = await worker.spawn()
        assert worker.process is not None
        children.add(worker.worker_id, worker.process)
        processes.append(worker.process)
        if router is not None:
            router.expect(worker.worker_id, pid)


async def reap_workers(workers: list[WorkerProcess]) -> None:
    """Wait (bounded) for each stopped worker's output pumps; report an unclean exit."""
    for worker in workers:
        if worker.process is None:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.wait(), STOP_WAIT)
        if worker.process.returncode not in (0, None):
            logger.warning("%s exited with code %s", worker.worker_id, worker.process.returncode)


def make_router(
    endpoint: str,
    runtimes: list[str],
    settings: Settings,
    on_ready: Callable[[WorkerLink], None],
) -> Router:
    """A ``Router`` as ``Supervisor`` builds it, with the arbiter's READY callback; a worker that misses its
    heartbeats is logged as an error (the benchmark's figures would not mean much)."""
    router = Router(
        endpoint,
        pools=runtimes,
        max_message_size=settings.max_message_size,
        heartbeat_interval=settings.heartbeat_interval,
    )
    router.on_ready = on_ready
    router.on_unresponsive = _report_unresponsive
    return router


def _report_unresponsive(link: WorkerLink) -> None:
    logger.error("%s (pid %d) missed its heartbeats during the benchmark", link.worker_id, link.pid)


def router_socket(context: zmq.asyncio.Context, endpoint: str) -> zmq.asyncio.Socket:
    """A ROUTER bound to ``endpoint`` with the options ``Router.start`` sets."""
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
    socket.setsockopt(zmq.SNDHWM, ROUTER_HWM)
    socket.setsockopt(zmq.RCVHWM, ROUTER_HWM)
    socket.bind(endpoint)
    return socket


def send_nowait(socket: zmq.asyncio.Socket, frames: tuple[bytes, bytes]) -> None:
    """Queue ``frames`` without awaiting, as ``Router._send_raw`` does, retrieving a failure (a peer that is
    gone) instead of leaving it to an unawaited future's "exception was never retrieved" log."""
    sent = cast("asyncio.Future[object]", socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False))
    if sent.done():
        sent.exception()
    else:
        sent.add_done_callback(lambda done: done.exception())


async def spawn_echo(
    endpoint: str, mode: str, cpu: int | None, log_path: Path, children: Children
) -> asyncio.subprocess.Process:
    """Start ``python -m benchmarks.echo_peer`` in ``mode`` (on core ``cpu`` if given), its output going to
    ``log_path``; it is registered in ``children`` at once."""
    argv = [sys.executable, "-m", "benchmarks.echo_peer", endpoint, mode, str(os.getpid()),
            str(-1 if cpu is None else cpu)]  # fmt: skip
    return await start_child(children, f"echo-{mode}", argv, log_path)
