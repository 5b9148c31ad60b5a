"""The state of one ``python -m benchmarks`` run, and how its benchmarks start and stop processes.

Every process is started through ``benchmarks.lib.trampoline``, which asks Linux to SIGKILL it when this
process dies (``PR_SET_PDEATHSIG``, which survives ``exec``), checks its parent is still this process
(closing the race), then ``exec``-s the real program (the supervisor, the SDK-only server, ``wrk``,
``py-spy``); the pid stays the same. Children run in their own session, so a Ctrl-C in the terminal reaches
only this process, which then stops them itself, by pid: SIGTERM, a bounded wait, SIGKILL. The worker
processes of a supervisor are recorded by pid and creation time (``Suite.watch``) and SIGKILLed by pid if
they outlive their supervisor (they would also die by their own ``PR_SET_PDEATHSIG``). ``Children`` tracks
the rest; a child that exits on its own ends the benchmark that started it, naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.lib.children import Children, alive, start_child
from benchmarks.lib.results import Section
from benchmarks.lib.running import Recorder

STOP_GRACE = 5.0
"""How long a process gets to exit after SIGTERM before SIGKILL."""


@dataclass
class Suite:
    """One run of ``python -m benchmarks``: its options, private directory, processes and results."""

    quick: bool
    tmp: Path
    """The run's private directory (mode 0700): logs, databases, scripts."""
    children: Children
    log: Recorder
    sections: dict[str, Section] = field(default_factory=dict)
    """Benchmark name → what it produced, in the order they ran."""
    wrk: str | None = None
    py_spy: str | None = None
    logs: dict[int, Path] = field(default_factory=dict)
    """Where each child's output went, by pid (to show when it dies)."""
    watched: dict[int, tuple[str, float]] = field(default_factory=dict)
    """Grandchildren (supervisor workers) by pid: name and process creation time, to kill only them."""

    def pick(self, full: Any, quick: Any) -> Any:
        """The full run's value or the ``--quick`` run's."""
        return quick if self.quick else full

    def watch(self, name: str, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self.watched[pid] = (name, psutil.Process(pid).create_time())

    def kill_watched(self) -> list[str]:
        """SIGKILL every recorded grandchild still alive (same pid *and* creation time)."""
        killed: list[str] = []
        for pid, (name, created) in list(self.watched.items()):
            if alive(pid, created):
                killed.append(f"{name} (pid {pid})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            del self.watched[pid]
        return killed


async def spawn(
    suite: Suite, name: str, argv: Sequence[str], log_path: Path, *, exits_by_itself: bool = False
) -> asyncio.subprocess.Process:
    """Start ``argv`` (output to ``log_path``) in its own session, dying with this process; it is
    registered in ``suite.children`` at once (``exits_by_itself``: its exit is not a failure)."""
    trampoline = [sys.executable, "-m", "benchmarks.lib.trampoline", str(os.getpid())]
    process = await start_child(suite.children, name, [*trampoline, *argv], log_path, new_session=True)
    suite.logs[process.pid] = log_path
    if exits_by_itself:
        suite.children.stopping([process])
    return process


async def stop_process(suite: Suite, process: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> None:
    """SIGTERM by pid, wait up to ``grace``, then SIGKILL by pid (``Children.stop``) and reap."""
    suite.children.stopping([process])
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
    await suite.children.stop([process], grace)


async def run_to_end(suite: Suite, name: str, argv: Sequence[str], log_path: Path, timeout: float) -> int:
    """Start ``argv`` as ``spawn`` does and wait for it to exit by itself; returns its exit code.

    Raises:
        TimeoutError: it ran longer than ``timeout`` seconds (it is stopped first).

    Cancellation: the process is stopped (SIGTERM, then SIGKILL after 1 s) before the cancellation goes on.
    """
    process = await spawn(suite, name, argv, log_path, exits_by_itself=True)
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    finally:
        if process.returncode is None:
            await stop_process(suite, process, 1.0)
