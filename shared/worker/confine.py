"""The worker's side of containment, done once at start before any tool is imported (docs/security.md).

- ``RLIMIT_CORE`` 0 (a crash writes no core file holding call data), ``RLIMIT_NOFILE`` and, when set,
  ``RLIMIT_AS`` from the launch options; soft and hard alike, so an unprivileged tool cannot raise them.
- ``PR_SET_DUMPABLE`` 0: a sibling worker's tool cannot ptrace this one or read its memory through
  ``/proc/<pid>/mem``, and its ``/proc`` files are owned by root.
- ``PR_SET_CHILD_SUBREAPER``: a process a tool starts stays in this worker's tree even when its parent
  exits (a double fork, ``setsid()``), so the supervisor can find it and kill it with the worker.

Being a subreaper, the worker inherits the orphans of its tools' processes and must reap them when they
exit. It never takes the exit status a tool waits for: ``ZombieJanitor`` reaps a zombie child only once
it has seen that process with another parent (adopted), or after ``ZOMBIE_LINGER`` seconds unclaimed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import sys
import threading
import time

import psutil

logger = logging.getLogger("mcp_supervisor.worker")

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
JANITOR_INTERVAL = 5.0
"""Seconds between two looks at the worker's zombie children."""
ZOMBIE_LINGER = 300.0
"""A zombie child never seen with another parent is reaped after this long: its parent in the tool would
have collected it long before (a ``Popen`` polled later than that reads exit code 0)."""


def confine(rlimit_nofile: int | None, rlimit_as: int | None) -> None:
    """Apply the limits and the process flags above to this process; failures are logged, not raised
    (an operating system without them still runs the worker)."""
    limits = {resource.RLIMIT_CORE: 0, resource.RLIMIT_NOFILE: rlimit_nofile, resource.RLIMIT_AS: rlimit_as}
    for which, value in limits.items():
        if value is None:
            continue
        try:
            _, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError) as exc:
            logger.warning("cannot set resource limit %d to %d: %s", which, value, exc)
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for option in (PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER):
        if libc.prctl(option, 0 if option == PR_SET_DUMPABLE else 1, 0, 0, 0) != 0:
            logger.warning("prctl(%d) failed: %s", option, os.strerror(ctypes.get_errno()))
    ZombieJanitor().start()


class ZombieJanitor:
    """A daemon thread reaping the zombies of processes this worker adopted as a subreaper."""

    def __init__(self) -> None:
        self._parents: dict[int, int] = {}
        """Each descendant's parent as last seen."""
        self._zombies: dict[int, float] = {}
        """Each zombie child never seen with another parent, and when it was first seen."""

    def start(self) -> None:
        threading.Thread(target=self._serve, name="zombie-janitor", daemon=True).start()

    def _serve(self) -> None:
        clock = threading.Event()
        while not clock.wait(JANITOR_INTERVAL):
            try:
                self.sweep(psutil.Process(), time.monotonic())
            except psutil.Error:  # pragma: no cover - /proc unreadable: try again later
                pass

    def sweep(self, me: psutil.Process, now: float) -> list[int]:
        """Reap the zombie children that were adopted or lingered; returns their pids."""
        reaped = []
        zombies: dict[int, float] = {}
        parents: dict[int, int] = {}
        for process in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                parents[process.pid] = process.ppid()
                if parents[process.pid] != me.pid or process.status() != psutil.STATUS_ZOMBIE:
                    continue
                adopted = self._parents.get(process.pid, me.pid) != me.pid
                since = self._zombies.get(process.pid, now)
                if adopted or now - since >= ZOMBIE_LINGER:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(process.pid, os.WNOHANG)
                        reaped.append(process.pid)
                else:
                    zombies[process.pid] = since
        self._parents, self._zombies = parents, zombies
        return reaped
