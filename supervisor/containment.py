"""Containing what a worker's tools start: the worker's environment, its process tree, and who may use the
control socket.

A tool is untrusted code (docs/security.md). Every worker starts in a session and process group of its
own; the worker makes itself a child subreaper (``shared.worker.confine``), so a process a tool starts
stays in the worker's tree even after its parent exits or it calls ``setsid()``. The supervisor is a
child subreaper too: when a worker dies, whatever is left of its tree is re-parented to the supervisor,
not to init. So, after a worker is reaped, every child of the supervisor that is not one of its workers
(a *stray*) is what a dead worker left behind, and ``Containment.sweep`` kills it with its descendants.
The same property lets the control socket refuse a worker's descendants: they can never leave the
supervisor's tree.

Linux only (``prctl``); elsewhere the process group is the only containment and ``enable`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator

import psutil

from shared import dburl

logger = logging.getLogger("mcp_supervisor.containment")

PR_SET_CHILD_SUBREAPER = 36
SWEEP_DEADLINE = 2.0
"""How long a sweep keeps killing and reaping strays (a stray's children come to the supervisor only once
the stray is dead, so a sweep takes a few rounds)."""
SWEEP_ROUND = 0.01
"""The pause between two rounds of a sweep."""

DEFAULT_WORKER_ENV: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR",
    "PYTHON*", "VIRTUAL_ENV", "XDG_*", "STATE_DIRECTORY", "SSL_CERT_FILE", "SSL_CERT_DIR",
)  # fmt: skip
"""The variables a worker inherits by default; ``NAME*`` is a prefix. ``STATE_DIRECTORY`` is where the
task-queue worker finds its default database; nothing of ``MCP_SUPERVISOR_*`` (the state keys are
secret) nor systemd's variables."""
ENV_ALWAYS_REMOVED = (
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
)  # fmt: skip
"""systemd's variables, meant for the service's main process only, even when ``worker_env`` allows them."""


def env_allowed(name: str, allow: tuple[str, ...]) -> bool:
    """True when ``name`` is in ``allow`` or starts with one of its ``PREFIX*`` entries."""
    return any(name.startswith(entry[:-1]) if entry.endswith("*") else name == entry for entry in allow)


def worker_environment(allow: tuple[str, ...] = DEFAULT_WORKER_ENV) -> dict[str, str]:
    """A worker's environment: the variables of this process that ``allow`` names, and unbuffered Python
    output (a worker's last lines reach the log even when it is killed)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if env_allowed(key, allow) and key not in ENV_ALWAYS_REMOVED
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def database_argument(task_db: str) -> str:
    """The queue worker's ``--task-db``: a path as it is, a URL without its password (a command line is
    readable by every user of the host; ``database_environment`` hands the password over)."""
    return dburl.split_password(task_db)[0] if dburl.is_url(task_db) else task_db


def database_environment(
    task_db: str | None, allow: tuple[str, ...]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The allow-list and the extra variables of the worker that opens ``task_db`` (``None``: any other
    worker): for a PostgreSQL URL, libpq's own ``PG*`` variables too, and the URL's password as
    ``PGPASSWORD``."""
    if task_db is None or not dburl.is_url(task_db):
        return allow, {}
    password = dburl.split_password(task_db)[1]
    return (*allow, "PG*"), {} if password is None else {"PGPASSWORD": password}


def kill_group(pgid: int) -> None:
    """SIGKILL the process group ``pgid`` (a worker's, whose id is the worker's pid); a no-op when the
    group is empty. Safe after the worker is reaped: Linux does not reuse a pid while a group has it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Containment:
    """The supervisor's side of worker containment: subreaping and sweeping strays.

    ``workers()`` returns the pids of the current worker processes; every other child of this process is
    a stray once ``enable`` succeeded. Disabled (a fake arbiter in tests, another OS), ``sweep`` does
    nothing: without the subreaper, this process's children may be anything.
    """

    def __init__(self, workers: Callable[[], set[int]]) -> None:
        self._workers = workers
        self._spawning = 0
        self.active = False

    def enable(self) -> bool:
        """Make this process a child subreaper; True when it is (Linux)."""
        if not sys.platform.startswith("linux"):
            logger.warning(
                "no child subreaper on %s: a tool's setsid() children may outlive it", sys.platform
            )
            return False
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: %s", os.strerror(ctypes.get_errno()))
            return False
        self.active = True
        return True

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        """Around a worker's spawn: a forked worker not yet recorded is not mistaken for a stray."""
        self._spawning += 1
        try:
            yield
        finally:
            self._spawning -= 1

    def strays(self) -> list[psutil.Process]:
        """The children of this process that are not workers (none while a worker is being spawned)."""
        if not self.active or self._spawning:
            return []
        workers = self._workers()
        try:
            return [child for child in psutil.Process().children() if child.pid not in workers]
        except psutil.Error:
            return []

    async def sweep(self) -> int:
        """SIGKILL every stray and its descendants and reap the strays, in rounds, until none is left or
        ``SWEEP_DEADLINE`` passes; returns how many processes were killed. Never raises.

        Cancellation: stops between two rounds; what was killed is reaped by a later sweep.
        """
        killed: set[int] = set()
        deadline = asyncio.get_running_loop().time() + SWEEP_DEADLINE
        while strays := self.strays():
            for stray in strays:
                try:
                    tree = [*stray.children(recursive=True), stray]
                except psutil.Error:
                    tree = [stray]
                for process in tree:
                    with contextlib.suppress(psutil.Error):
                        process.send_signal(signal.SIGKILL)
                        killed.add(process.pid)
            for stray in strays:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(stray.pid, os.WNOHANG)  # a stray is never a worker: no watcher waits on it
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(SWEEP_ROUND)
        if killed:
            logger.warning(
                "killed %d process(es) a dead worker's tools left behind: %s",
                len(killed),
                ", ".join(map(str, sorted(killed))),
            )
        return len(killed)


def refuse_peer(pid: int, uid: int) -> str | None:
    """Why a control-socket peer (from SO_PEERCRED) is refused, or None to serve it: another user (but
    root), or a process of this supervisor's own tree (a worker, or anything a tool started: with the
    subreaper, such a process never leaves the tree)."""
    if uid not in (os.getuid(), 0):
        return f"uid {uid} is neither this supervisor's user nor root"
    if pid <= 0:
        return None  # another pid namespace: not one of ours, which all share this one
    try:
        ancestors = {parent.pid for parent in psutil.Process(pid).parents()}
    except psutil.Error:
        return None  # already gone
    if os.getpid() in ancestors:
        return f"pid {pid} is a worker of this supervisor or was started by one; tools may not control it"
    return None
