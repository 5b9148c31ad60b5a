"""Taking workers out of service without losing a call: drain, wait, STOP, and SIGKILL only what is stuck.

Used for every retirement — a stop, a reload, a scale-down, a recycle — so they all keep the same
promise: a call a worker holds (and a request it made on its own behalf: the task queue's task runs) gets
its grace to finish, and no process outlives its retirement.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from .process import WorkerProcess
from .router_types import WorkerRouter

STOP_WAIT = 2.0
"""After STOP, how long a worker gets to exit before SIGKILL."""


async def drain_and_stop(
    router: WorkerRouter,
    workers: list[WorkerProcess],
    grace: float,
    reason: str,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
) -> bool:
    """Route nothing new to ``workers``, let their calls — and the requests they made on their own
    behalf, the task queue's task runs, which a drained queue starts no more of — finish within
    ``grace``, STOP them, SIGKILL what has not exited ``STOP_WAIT`` later, and end their supervising
    tasks. True when nothing was cut short."""
    for worker in workers:
        worker.retiring = True
        if worker.pid is not None:
            router.drain(worker.pid)
    pids = {w.pid for w in workers if w.pid is not None}
    deadline = clock() + grace
    while any(link.in_flight or link.own_requests for link in router.links() if link.pid in pids):
        if clock() >= deadline:
            break
        await sleep(0.02)
    clean = not any(link.in_flight or link.own_requests for link in router.links() if link.pid in pids)
    running = [w for w in workers if w.pid is not None and w.process is not None]
    for worker in running:
        worker.state = "draining"
        router.stop(worker.pid, reason)  # type: ignore[arg-type]
    if running:
        waits = [asyncio.ensure_future(w.process.wait()) for w in running]  # type: ignore[union-attr]
        _, pending = await asyncio.wait(waits, timeout=STOP_WAIT)
        if pending:
            clean = False
            for worker in running:
                worker.kill(signal.SIGKILL)
            await asyncio.wait(pending, timeout=STOP_WAIT)
    # A retiring worker's task ends by itself once its process has exited and the router was told;
    # only a task stuck past that is cancelled, and the router is told here in that case.
    tasks = [w.task for w in workers if w.task is not None]
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
    for pid in pids:
        router.worker_gone(pid, f"worker pid {pid} stopped: {reason}")
    return clean
