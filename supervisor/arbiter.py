"""The arbiter: spawns the worker processes, restarts them with backoff, stops them gracefully.

Each worker slot (``asyncio-0``, ``trio-0``, ...) has one supervising task that spawns the process,
waits for it to exit (the event loop's child watcher reaps it at once; nothing polls) and asks its
``RestartTracker`` (``restart.py``: exponential backoff, flapping window) how long to wait before the next
start. A flapping slot is marked failed while it rests; while every slot of a runtime is failed, calls to
that runtime fail fast with the reason and /readyz says so. The other runtime keeps serving.

All intervals use the monotonic clock. The arbiter never touches ZeroMQ: it tells the router which pid to
expect for a slot and when a process is gone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import psutil

from .config import Settings
from .process import WorkerProcess, describe_exit
from .restart import RestartPolicy, RestartTracker
from .router import Router, WorkerLink

logger = logging.getLogger("mcp_supervisor.arbiter")

STOP_WAIT = 2.0
"""After STOP, how long a worker gets to exit before SIGKILL."""


def plan_cpus(worker_ids: list[str], pin: bool) -> dict[str, int | None]:
    """Round-robin the workers over the cores this process may use (``None`` everywhere when not pinning)."""
    if not pin:
        return dict.fromkeys(worker_ids)
    try:
        cores = sorted(psutil.Process().cpu_affinity() or [])
    except (AttributeError, psutil.Error):  # platforms without affinity support
        return dict.fromkeys(worker_ids)
    if not cores:
        return dict.fromkeys(worker_ids)
    return {worker_id: cores[i % len(cores)] for i, worker_id in enumerate(worker_ids)}


def worker_slots(counts: dict[str, int]) -> list[tuple[str, str]]:
    """``(worker_id, runtime)`` pairs, interleaving runtimes so that the first of each land on different cores."""
    slots: list[tuple[str, str]] = []
    for index in range(max(counts.values(), default=0)):
        for runtime, count in counts.items():
            if index < count:
                slots.append((f"{runtime}-{index}", runtime))
    return slots


class Arbiter:
    """Keeps one process alive per worker slot."""

    def __init__(self, settings: Settings, router: Router) -> None:
        self.settings = settings
        self.router = router
        slots = worker_slots(settings.worker_counts())
        cpus = plan_cpus([worker_id for worker_id, _ in slots], settings.pin_cpus)
        self.workers: dict[str, WorkerProcess] = {
            worker_id: WorkerProcess(
                worker_id, runtime, cpus[worker_id], self._argv(worker_id, runtime, cpus[worker_id])
            )
            for worker_id, runtime in slots
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.restart_policy = RestartPolicy(
            initial=settings.restart_backoff_initial,
            maximum=settings.restart_backoff_max,
            reset_after=settings.restart_backoff_reset,
            flap_deaths=settings.flap_deaths,
            flap_window=settings.flap_window,
            cooldown=settings.flap_cooldown,
        )

    def _argv(self, worker_id: str, runtime: str, cpu: int | None) -> list[str]:
        s = self.settings
        argv = [
            "-m", f"{runtime}_worker",
            "--worker-id", worker_id,
            "--router", self.router.endpoint,
            "--threads", str(s.worker_threads),
            "--heartbeat-interval", str(s.heartbeat_interval),
            "--max-message-size", str(s.max_message_size),
            "--log-level", s.log_level,
        ]  # fmt: skip
        if cpu is not None:
            argv += ["--cpu", str(cpu)]
        for module in s.tools:
            argv += ["--tools", module]
        return argv

    # -- router callbacks --------------------------------------------------------------------------

    def on_ready(self, link: WorkerLink) -> None:
        worker = self.workers.get(link.worker_id)
        if worker is None or worker.pid != link.pid:
            return
        worker.state = "ready"
        worker.ready_at = time.monotonic()
        logger.info(
            "%s ready: pid %d, %d tool(s), cpu %s, started in %.2f s",
            link.worker_id, link.pid, len(link.catalog),
            "any" if worker.cpu is None else worker.cpu, worker.ready_at - worker.started_at,
        )  # fmt: skip

    def on_unresponsive(self, link: WorkerLink) -> None:
        worker = self.workers.get(link.worker_id)
        if worker is not None and worker.pid == link.pid:
            worker.kill_reason = "killed after missing heartbeats (event loop blocked or process stopped)"
            worker.kill(signal.SIGKILL)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start one supervising task per worker slot; returns at once."""
        self._tasks = [asyncio.create_task(self._supervise(worker)) for worker in self.workers.values()]

    async def stop(self, grace: float) -> bool:
        """Drain and stop every worker; returns True when none had to be killed.

        Waits up to ``grace`` seconds for in-flight calls to finish, sends STOP, waits ``STOP_WAIT`` for
        the processes to exit and SIGKILLs what is left. Idempotent.
        """
        self._stopping = True
        deadline = time.monotonic() + grace
        while any(link.in_flight for link in self.router.links()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        clean = not any(link.in_flight for link in self.router.links())
        for worker in self.workers.values():
            if worker.pid is not None:
                self.router.stop(worker.pid, "supervisor stopping")
        running = [w for w in self.workers.values() if w.pid is not None]
        if running:
            done, pending = await asyncio.wait(
                [asyncio.ensure_future(w.process.wait()) for w in running if w.process is not None],
                timeout=STOP_WAIT,
            )
            if pending:
                clean = False
                for worker in running:
                    worker.kill(signal.SIGKILL)
                await asyncio.wait(pending, timeout=STOP_WAIT)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for worker in self.workers.values():
            worker.state = "stopped"
        return clean

    async def _supervise(self, worker: WorkerProcess) -> None:
        tracker = RestartTracker(self.restart_policy)
        while not self._stopping:
            try:
                pid = await worker.spawn()
            except OSError as exc:
                worker.last_exit = f"could not start: {exc}"
                logger.error("%s could not start: %s", worker.worker_id, exc)
                code, pid, uptime = None, None, 0.0
            else:
                self.router.expect(worker.worker_id, pid)
                code = await worker.wait()
                uptime = time.monotonic() - worker.started_at
            if self._stopping:
                return
            if code is not None:
                worker.last_exit = f"{describe_exit(code)} after {uptime:.1f} s"
                if worker.kill_reason is not None:
                    worker.last_exit = f"{worker.kill_reason}: {worker.last_exit}"
                    worker.kill_reason = None
                self.router.worker_gone(pid, f"worker {worker.worker_id} (pid {pid}) {worker.last_exit}")
            worker.restarts += 1
            decision = tracker.record_death(time.monotonic(), uptime)
            if decision.failed:
                worker.state = "failed"
                self._update_runtime(worker.runtime)
                logger.error(
                    "%s died %d times in %.0f s (last: %s); resting %.0f s before trying again",
                    worker.worker_id, decision.deaths_in_window, self.restart_policy.flap_window,
                    worker.last_exit, decision.delay,
                )  # fmt: skip
            else:
                worker.state = "backoff"
                logger.error(
                    "%s (pid %s) %s; restarting in %.1f s",
                    worker.worker_id,
                    pid,
                    worker.last_exit,
                    decision.delay,
                )
            await asyncio.sleep(decision.delay)
            self._update_runtime(worker.runtime)

    def _update_runtime(self, runtime: str) -> None:
        slots = [w for w in self.workers.values() if w.runtime == runtime]
        if slots and all(w.state == "failed" for w in slots):
            self.router.set_runtime_failed(
                runtime, f"every {runtime} worker is failing: {slots[0].last_exit}"
            )
        else:
            self.router.set_runtime_failed(runtime, None)
