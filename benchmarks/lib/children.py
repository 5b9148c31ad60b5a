"""Every process a benchmark started, tracked by pid so that all of them are stopped whatever happens.

A child is stopped by its pid: told to stop (each benchmark has its own way: a STOP frame, SIGTERM), given
a bounded wait, then SIGKILLed and reaped. A child that exits before it was told it may (``stopping``)
cancels the benchmark that started it (``Children.main``) and is named in ``Children.died``: a timed loop
waiting on a dead peer ends at once instead of at a timeout. Once the event loop is gone,
``Children.finish`` SIGKILLs whatever is left. Every child also dies with the benchmark by itself
(``benchmarks.lib.lifeline``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from benchmarks.lib.running import REPO_ROOT
from supervisor.containment import worker_environment


def child_env() -> dict[str, str]:
    """This process's environment as ``WorkerProcess.spawn`` passes it on (``worker_environment`` with the
    default ``worker_env`` allow-list): every child of a benchmark gets what a worker gets."""
    return worker_environment()


async def start_child(
    children: Children, name: str, argv: Sequence[str], log_path: Path, *, new_session: bool = False
) -> asyncio.subprocess.Process:
    """Start ``argv`` in the repository root with ``child_env()``, its output (both streams) going to
    ``log_path``, in its own session if ``new_session``; it is registered in ``children`` at once.

    Raises:
        OSError: the program could not be started.
    """
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            env=child_env(), cwd=REPO_ROOT, start_new_session=new_session,
        )  # fmt: skip
    finally:
        os.close(log)  # the child has its own copy
    children.add(name, process)
    return process


class Children:
    """The processes of one benchmark run, by pid: a death nobody asked for ends the benchmark at once."""

    def __init__(self) -> None:
        self.processes: dict[int, tuple[str, asyncio.subprocess.Process]] = {}
        self.killed: list[str] = []
        """Children that did not exit within their grace and were SIGKILLed."""
        self.died: str | None = None
        """The first child that exited on its own, and how."""
        self.main: asyncio.Task[Any] | None = None
        """The task to cancel when a child dies on its own (the benchmark that started it)."""
        self._stopping: set[int] = set()
        self._watchers: set[asyncio.Task[None]] = set()

    def add(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.processes[process.pid] = (name, process)
        watcher = asyncio.create_task(self._watch(name, process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    def stopping(self, processes: Sequence[asyncio.subprocess.Process]) -> None:
        """These children may exit from now on (their path is being torn down, or they end by themselves)."""
        self._stopping.update(process.pid for process in processes)

    async def _watch(self, name: str, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if process.pid not in self._stopping and self.died is None:
            self.died = f"{name} (pid {process.pid}) exited with code {code} during the benchmark"
            if self.main is not None:
                self.main.cancel()

    async def stop(self, processes: Sequence[asyncio.subprocess.Process], grace: float) -> None:
        """Wait up to ``grace`` for each process to exit, then SIGKILL it (by pid) and reap it.

        Cancellation: the waits are cancelled with the caller; ``finish`` kills what is left.
        """
        self.stopping(processes)
        await asyncio.gather(*(self._stop(process, grace) for process in processes), return_exceptions=True)

    async def _stop(self, process: asyncio.subprocess.Process, grace: float) -> None:
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            name = self.processes.get(process.pid, ("?", process))[0]
            self.killed.append(f"{name} (pid {process.pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)

    def kill_leftovers(self) -> list[str]:
        """Last resort once the event loop is gone: SIGKILL and reap every child not known to have exited."""
        left: list[str] = []
        for pid, (name, process) in self.processes.items():
            if process.returncode is not None:
                continue
            left.append(f"{name} (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        return left

    def finish(self, also_killed: Sequence[str] = ()) -> None:
        """``kill_leftovers``, then say on stderr which processes (with ``also_killed``, killed by the
        caller) had to be killed."""
        leftovers = self.kill_leftovers() + list(also_killed)
        if leftovers:
            print(f"killed leftover processes: {', '.join(leftovers)}", file=sys.stderr)
        if self.killed:
            print(f"had to SIGKILL: {', '.join(self.killed)}", file=sys.stderr)


async def first_or_death(
    awaitable: Awaitable[Any],
    processes: Sequence[asyncio.subprocess.Process],
    what: str,
    log: Callable[[], str],
    deadline: float,
) -> Any:
    """The result of ``awaitable``, unless one of ``processes`` exits or ``deadline`` seconds pass first.

    Raises:
        RuntimeError: a process exited first, or nothing came in time; the message names ``what`` and
            ends with ``log()``.
    """
    waiting = asyncio.ensure_future(awaitable)
    deaths = [asyncio.ensure_future(process.wait()) for process in processes]
    try:
        done, _ = await asyncio.wait(
            {waiting, *deaths}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
        )
        if waiting in done:
            return waiting.result()
        for process, death in zip(processes, deaths, strict=True):
            if death in done:
                raise RuntimeError(
                    f"{what}: pid {process.pid} exited with code {death.result()} first:\n{log()}"
                )
        raise RuntimeError(f"{what}: nothing within {deadline:g} s:\n{log()}")
    finally:
        for future in (waiting, *deaths):
            if not future.done():
                future.cancel()
        await asyncio.gather(waiting, *deaths, return_exceptions=True)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a child's log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def alive(pid: int, created: float | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not), and is the process created at ``created`` if given (a
    reused pid is not)."""
    try:
        process = psutil.Process(pid)
        if created is not None and abs(process.create_time() - created) > 0.01:
            return False  # the pid was reused
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
