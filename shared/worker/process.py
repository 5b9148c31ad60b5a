"""The worker process, from ``python -m asyncio_worker`` or ``python -m trio_worker`` to its exit code.

``run_worker`` parses the command line the supervisor wrote (``shared.launch.WorkerOptions``), sets up
logging to stderr (the supervisor captures it line by line), pins the process to its core, connects its
socket to the router, and with ``--user`` drops to that user for good (``privileges``; the connection is
made first: the router's socket is root's). Then it ties the process's life to the supervisor's
(``PR_SET_PDEATHSIG`` and a ``getppid()`` check right after it, which closes the race where the parent
died first) and confines it (``confine``: resource limits, not dumpable, a child subreaper), both after
the drop, which would undo them; it loads the tools, freezes the heap start-up built (``shared.heap``)
and hands the socket over to the runtime's ``serve``, which announces READY.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable

import psutil
import zmq

from ..heap import freeze_startup_heap
from ..launch import EXIT_ORPHANED, EXIT_PRIVILEGES, WorkerOptions
from ..logformat import configure_logging
from ..metadata import Runtime
from ..zmqio.core import connect_dealer
from .confine import confine
from .host import ToolHost
from .privileges import PrivilegeError, drop_privileges

PR_SET_PDEATHSIG = 1
CONNECT_BEFORE_DROP = 10.0
"""Seconds a worker that drops privileges waits for its connection to the router before it gives up."""

logger = logging.getLogger("mcp_supervisor.worker")


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies, then check the parent is still there.

    Exits with ``EXIT_ORPHANED`` when the parent is already gone (the check after prctl closes the race).
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        logger.error("supervisor (pid %d) is gone; exiting", parent_pid)
        sys.exit(EXIT_ORPHANED)


def pin_to_cpu(cpu: int) -> None:
    """Pin this process to one core before any thread starts, so every later thread inherits it."""
    try:
        psutil.Process().cpu_affinity([cpu])
    except (AttributeError, ValueError, psutil.Error) as exc:
        logger.warning("cannot pin to cpu %d: %s", cpu, exc)


def connect(options: WorkerOptions) -> zmq.Socket[bytes]:
    """The worker's DEALER, connected to the router; dropped to ``options.user`` when there is one (the
    connection made first: ZeroMQ connects in the background, and after the drop the router's socket,
    in root's runtime directory, can no longer be opened).

    Exits with ``EXIT_PRIVILEGES`` when the connection is not made in ``CONNECT_BEFORE_DROP`` seconds or
    the drop fails (the log says why).
    """
    wait = None if options.user is None else CONNECT_BEFORE_DROP
    try:
        socket = connect_dealer(
            zmq.Context(), options.router, options.identity, options.max_message_size, wait=wait
        )
        if options.user is not None and options.group is not None:
            drop_privileges(options.user, options.group)
    except (ConnectionError, PrivilegeError) as exc:
        logger.error("cannot run as uid %s gid %s: %s", options.user, options.group, exc)
        sys.exit(EXIT_PRIVILEGES)
    return socket


def run_worker(runtime: Runtime, serve: Callable[[WorkerOptions, ToolHost, zmq.Socket[bytes]], int]) -> None:
    """Entry point shared by both workers; exits the process with ``serve``'s exit code. ``serve`` gets the
    connected socket and terminates its context."""
    options = WorkerOptions.parse(runtime)
    configure_logging(options.log_level, options.log_format, worker=True)
    if options.cpu is not None:
        pin_to_cpu(options.cpu)  # before ZeroMQ starts its threads, which inherit the core
    socket = connect(options)
    die_with_parent(options.parent_pid)
    confine(options.rlimit_nofile, options.rlimit_as)
    # SIGTERM/SIGINT from a terminal or a unit stop reach the whole process group: the supervisor decides
    # when workers stop (it sends STOP after draining), so the worker ignores them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    host = ToolHost(options.worker_id, runtime, options.modules, options.max_message_size, pool=options.pool)
    host.load()
    logger.info(
        "loaded %d %s tool(s) from %s%s",
        len(host.tools),
        runtime,
        ", ".join(host.modules),
        f"; {len(host.load_errors)} load error(s)" if host.load_errors else "",
    )
    freeze_startup_heap()
    sys.exit(serve(options, host, socket))
