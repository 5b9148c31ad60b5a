"""How the supervisor starts a worker process, and how the worker reads it: the command line and the exit
codes, written once for both sides.

The supervisor's arbiter builds a ``WorkerOptions`` and runs ``python -m <runtime>_worker`` with
``options.to_argv()``; the worker parses its own command line with ``WorkerOptions.parse`` and gets the
same options back (``tests/shared/test_launch.py`` round-trips them). A worker ends with one of the
``EXIT_*`` codes of ``shared.exits`` (re-exported here), which the supervisor names when it reaps it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, dataclass, fields
from typing import Any, get_args

from .exits import EXIT_OK, EXIT_ORPHANED, EXIT_PRIVILEGES, EXIT_PROTOCOL  # the worker's codes, re-exported
from .logformat import LogFormat
from .metadata import Runtime
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, HEARTBEAT_INTERVAL

SERVICES = ("taskqueue",)
"""The services a worker can host besides its tools (``--service``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """Everything a worker process is told at start.

    Options (command-line flag, default):
        worker_id (``--worker-id``, required): the slot, for example ``asyncio-0``.
        runtime (the module run, ``python -m <runtime>_worker``): ``asyncio`` or ``trio``.
        router (``--router``, required): the ZeroMQ endpoint of the supervisor's router.
        parent_pid (``--parent-pid``, the process that started the worker): the supervisor's pid; the
            worker exits when it is gone.
        pool (``--pool``, the runtime): the routing group announced in READY.
        modules (``--tools``, repeated; none: the default tools): tool modules to import.
        cpu (``--cpu``, none): the core to pin the process to.
        service (``--service``, none): a service the worker hosts (``taskqueue``).
        task_db (``--task-db``, none: the user's state directory): the task queue's SQLite file, or its
            PostgreSQL URL without a password (the worker's ``PGPASSWORD`` carries it).
        task_lease_seconds (``--task-lease-seconds``, none: the engine's default, 30): on PostgreSQL, how
            long a running task stays with an engine that stopped renewing its lease.
        task_ttl (``--task-ttl``, none: the engine's default, 3600): seconds MCP tasks are kept after
            they end (0: forever).
        task_retention (``--task-retention``, none: the engine's default, 604800): seconds finished queue
            tasks and workflows are kept (0: forever).
        step_max_bytes (``--step-max-bytes``, none: the engine's default, 1 MiB): the largest input or
            output of a workflow step, as JSON bytes.
        threads (``--threads``, 8): the size of the thread pool for sync tools.
        heartbeat_interval (``--heartbeat-interval``, ``HEARTBEAT_INTERVAL``): seconds between heartbeats.
        max_message_size (``--max-message-size``, ``DEFAULT_MAX_MESSAGE_SIZE``): largest frame, in bytes.
        log_level (``--log-level``, ``info``) and log_format (``--log-format``, ``text``): logging on stderr.
        rlimit_nofile (``--rlimit-nofile``, none: inherited) and rlimit_as (``--rlimit-as``, none: no cap):
            the worker's ``RLIMIT_NOFILE`` and ``RLIMIT_AS`` (``shared.worker.confine``).
        user and group (``--user``/``--group``, none: stay as started): the numeric ids the worker drops
            to before it imports a tool module (``shared.worker.privileges``); both or neither.
    """

    worker_id: str
    runtime: Runtime
    router: str
    parent_pid: int
    pool: str
    modules: tuple[str, ...] = ()
    cpu: int | None = None
    service: str | None = None
    task_db: str | None = None
    task_ttl: float | None = None
    task_retention: float | None = None
    task_lease_seconds: float | None = None
    step_max_bytes: int | None = None
    threads: int = 8
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    log_level: str = "info"
    log_format: LogFormat = "text"
    rlimit_nofile: int | None = None
    rlimit_as: int | None = None
    user: int | None = None
    group: int | None = None

    @property
    def module(self) -> str:
        """The module ``python -m`` runs for this worker."""
        return f"{self.runtime}_worker"

    @property
    def identity(self) -> bytes:
        """The ZeroMQ identity: the worker id plus the pid, unique for each incarnation (read it in the
        worker process)."""
        return f"{self.worker_id}/{os.getpid()}".encode()

    def command(self) -> list[str]:
        """The interpreter's arguments that start this worker: ``-m <module>`` and ``to_argv()``."""
        return ["-m", self.module, *self.to_argv()]

    def to_argv(self) -> list[str]:
        """The worker's command line (after the module name); ``parse`` reads it back to these options."""
        argv = [
            "--worker-id", self.worker_id,
            "--router", self.router,
            "--parent-pid", str(self.parent_pid),
            "--threads", str(self.threads),
            "--heartbeat-interval", str(self.heartbeat_interval),
            "--max-message-size", str(self.max_message_size),
            "--log-level", self.log_level,
            "--log-format", self.log_format,
        ]  # fmt: skip
        if self.cpu is not None:
            argv += ["--cpu", str(self.cpu)]
        if self.pool != self.runtime:
            argv += ["--pool", self.pool]
        if self.service is not None:
            argv += ["--service", self.service]
        if self.task_db is not None:
            argv.append(f"--task-db={self.task_db}")  # one argument: a relative path may start with "-"
        if self.task_ttl is not None:
            argv += ["--task-ttl", repr(self.task_ttl)]
        if self.task_retention is not None:
            argv += ["--task-retention", repr(self.task_retention)]
        if self.task_lease_seconds is not None:
            argv += ["--task-lease-seconds", repr(self.task_lease_seconds)]
        if self.step_max_bytes is not None:
            argv += ["--step-max-bytes", str(self.step_max_bytes)]
        if self.rlimit_nofile is not None:
            argv += ["--rlimit-nofile", str(self.rlimit_nofile)]
        if self.rlimit_as is not None:
            argv += ["--rlimit-as", str(self.rlimit_as)]
        if self.user is not None and self.group is not None:
            argv += ["--user", str(self.user), "--group", str(self.group)]
        for module in self.modules:
            argv += ["--tools", module]
        return argv

    @classmethod
    def parse(cls, runtime: Runtime, argv: list[str] | None = None) -> WorkerOptions:
        """The options of a ``runtime`` worker from its command line (``sys.argv[1:]`` when None).

        Raises:
            SystemExit: the command line is wrong (argparse prints why and the usage on stderr).
        """
        args = _parser(runtime).parse_args(argv)
        return cls(
            worker_id=args.worker_id,
            runtime=runtime,
            router=args.router,
            parent_pid=args.parent_pid,
            pool=args.pool or runtime,
            modules=tuple(args.tools),
            cpu=args.cpu,
            service=args.service,
            task_db=args.task_db,
            task_ttl=args.task_ttl,
            task_retention=args.task_retention,
            task_lease_seconds=args.task_lease_seconds,
            step_max_bytes=args.step_max_bytes,
            threads=args.threads,
            heartbeat_interval=args.heartbeat_interval,
            max_message_size=args.max_message_size,
            log_level=args.log_level,
            log_format=args.log_format,
            rlimit_nofile=args.rlimit_nofile,
            rlimit_as=args.rlimit_as,
            user=args.user,
            group=args.group,
        )


def _parser(runtime: Runtime) -> argparse.ArgumentParser:
    default = _defaults()
    parser = argparse.ArgumentParser(
        prog=f"python -m {runtime}_worker", description=f"mcp-supervisor {runtime} worker"
    )
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--router", required=True, help="ZeroMQ endpoint of the supervisor's router")
    parser.add_argument("--tools", action="append", default=[], help="tool module to import (repeatable)")
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU core")
    parser.add_argument(
        "--pool", default=None, help="the routing group announced in READY (default: the runtime)"
    )
    parser.add_argument("--service", choices=SERVICES, default=None, help="a service this worker hosts")
    parser.add_argument(
        "--task-db", default=None, help="the task queue's SQLite file or PostgreSQL URL (with --service)"
    )
    parser.add_argument(
        "--task-ttl", type=float, default=None, help="seconds MCP tasks are kept after they end"
    )
    parser.add_argument(
        "--task-retention", type=float, default=None, help="seconds finished queue tasks are kept"
    )
    parser.add_argument(
        "--task-lease-seconds", type=float, default=None, help="lease of a running task (PostgreSQL)"
    )
    parser.add_argument(
        "--step-max-bytes", type=int, default=None, help="largest workflow step input or output (JSON bytes)"
    )
    parser.add_argument(
        "--threads", type=int, default=default["threads"], help="size of the thread pool for sync tools"
    )
    parser.add_argument("--heartbeat-interval", type=float, default=default["heartbeat_interval"])
    parser.add_argument("--max-message-size", type=int, default=default["max_message_size"])
    parser.add_argument("--log-level", default=default["log_level"])
    parser.add_argument("--log-format", choices=get_args(LogFormat), default=default["log_format"])
    parser.add_argument("--rlimit-nofile", type=int, default=None, help="RLIMIT_NOFILE of the worker")
    parser.add_argument("--rlimit-as", type=int, default=None, help="RLIMIT_AS of the worker, bytes")
    parser.add_argument("--user", type=int, default=None, help="uid to drop to before importing tools")
    parser.add_argument("--group", type=int, default=None, help="gid to drop to (with --user)")
    return parser


def _defaults() -> dict[str, Any]:
    """The defaults of ``WorkerOptions``, which the parser uses too (one place for each)."""
    return {field.name: field.default for field in fields(WorkerOptions) if field.default is not MISSING}


__all__ = ["EXIT_OK", "EXIT_ORPHANED", "EXIT_PRIVILEGES", "EXIT_PROTOCOL", "SERVICES", "WorkerOptions"]
