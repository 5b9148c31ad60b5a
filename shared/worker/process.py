"""The worker process, from ``python -m asyncio_worker`` or ``python -m trio_worker`` to its exit code.

``run_worker`` parses the command line the supervisor wrote (``shared.launch.WorkerOptions``), ties the
process's life to the supervisor's (``PR_SET_PDEATHSIG`` and a ``getppid()`` check right after it, which
closes the race where the parent died first), confines it (``confine``: resource limits, not dumpable, a
child subreaper), sets up logging to stderr (the supervisor captures it line by line), loads the tools,
freezes the heap start-up built (``shared.heap``) and hands over to the runtime's ``serve``, which
announces READY.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable

import psutil

from ..heap import freeze_startup_heap
from ..launch import EXIT_ORPHANED, WorkerOptions
from ..logformat import configure_logging
from ..metadata import Runtime
from .confine import confine
from .host import ToolHost

PR_SET_PDEATHSIG = 1

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


def run_worker(runtime: Runtime, serve: Callable[[WorkerOptions, ToolHost], int]) -> None:
    """Entry point shared by both workers; exits the process with ``serve``'s exit code."""
    options = WorkerOptions.parse(runtime)
    configure_logging(options.log_level, options.log_format, worker=True)
    die_with_parent(options.parent_pid)
    confine(options.rlimit_nofile, options.rlimit_as)
    if options.cpu is not None:
        pin_to_cpu(options.cpu)
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
    sys.exit(serve(options, host))
