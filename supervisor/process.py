"""One worker OS process: spawning it, its CPU core, capturing its output line by line, killing it.

A worker starts in a session (and process group) of its own, with an environment built from the
``worker_env`` allow-list. Its output comes through pipes the supervisor made itself, read apart from the
process: a tool's background child that inherited them can delay no more than ``PIPE_DRAIN`` the news that
the worker is gone (``wait``), and the worker's group is killed as soon as the worker is reaped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from shared.exits import WORKER_EXITS

from .containment import DEFAULT_WORKER_ENV, kill_group, worker_environment

logger = logging.getLogger("mcp_supervisor.arbiter")

LINE_LIMIT = 1 << 20
"""Longest output line kept whole; longer lines are split."""
PIPE_DRAIN = 1.0
"""After a worker exits (and its group is killed), how long its last output lines get to arrive."""

_LEVELS = {name: getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


@dataclass(eq=False)
class WorkerProcess:
    """A worker slot (``asyncio-0``) and the process currently filling it.

    ``state`` is one of ``starting`` (spawned, READY not yet seen), ``ready``, ``spare`` (a spare that is
    READY, held for a slot of its pool), ``backoff`` (waiting to restart), ``failed`` (flapping; retried
    after a cool-down), ``draining`` (being replaced: finishing its calls, taking no new ones) and
    ``stopped``.

    A *candidate* is a replacement that has not been promoted yet: if it exits before READY, that is a
    failed start reported through ``start_failed``, not something to restart. A *retiring* worker was
    drained on purpose and is not restarted when it exits. A *spare* (``spares.py``) is a process of a
    pool kept READY but never routed to, until a slot of that pool ``adopt``s it.
    """

    worker_id: str
    runtime: str
    cpu: int | None
    argv: list[str]
    json_logs: bool = False
    pool: str = ""
    """The routing group; the runtime's name unless the worker has a pool of its own (``trio-queue``)."""
    env: tuple[str, ...] = DEFAULT_WORKER_ENV
    """The ``worker_env`` allow-list: the variables of the supervisor's environment the worker gets."""
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)
    """Variables set for this worker only, whatever the allow-list (the task database's password)."""
    process: asyncio.subprocess.Process | None = None
    state: str = "stopped"
    started_at: float = 0.0
    ready_at: float | None = None
    restarts: int = 0
    last_exit: str | None = None
    kill_reason: str | None = None
    candidate: bool = False
    spare: bool = False
    retiring: bool = False
    start_failed: str | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a candidate is READY or has failed to start."""
    task: asyncio.Task[None] | None = None
    """The arbiter's supervising task of this slot."""
    _pumps: list[asyncio.Task[None]] = field(default_factory=list)
    _pipes: list[asyncio.BaseTransport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pool = self.pool or self.runtime

    def fresh(self) -> WorkerProcess:
        """A new, not started worker for the same slot (same command line, core and pool)."""
        return WorkerProcess(
            self.worker_id,
            self.runtime,
            self.cpu,
            self.argv,
            json_logs=self.json_logs,
            pool=self.pool,
            env=self.env,
            extra_env=self.extra_env,
            spare=self.spare,
        )

    def adopt(self, spare: WorkerProcess) -> int:
        """Make ``spare``'s running process this slot's (its output is logged under this slot's id from
        now on) and return its pid; ``spare`` is left without a process."""
        assert spare.process is not None and spare.pid is not None
        self.process, self._pumps = spare.process, spare._pumps
        self.started_at, self.ready_at, self.state = spare.started_at, spare.ready_at, "ready"
        spare.process, spare._pumps = None, []
        spare.worker_id = self.worker_id  # the pumps, still bound to ``spare``, prefix its lines with it
        return self.process.pid

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    def uptime(self) -> float:
        return time.monotonic() - self.started_at if self.pid is not None else 0.0

    async def spawn(self) -> int:
        """Start the process in a new session; returns its pid. Its stdout and stderr are logged line by
        line.

        Raises:
            OSError: the interpreter could not be started.
        """
        loop = asyncio.get_running_loop()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                env={**worker_environment(self.env), **self.extra_env},
                start_new_session=True,
            )
        except BaseException:
            for fd in (out_read, err_read):
                os.close(fd)
            raise
        finally:
            os.close(out_write)
            os.close(err_write)
        self.started_at = time.monotonic()
        self.ready_at = None
        self.state = "starting"
        self._pumps, self._pipes = [], []
        for fd in (out_read, err_read):
            reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
            transport, _ = await loop.connect_read_pipe(
                lambda reader=reader: asyncio.StreamReaderProtocol(reader, loop=loop),  # type: ignore[misc]
                os.fdopen(fd, "rb", buffering=0),
            )
            self._pipes.append(transport)
            self._pumps.append(asyncio.create_task(self._pump(reader, logging.INFO)))
        return self.process.pid

    async def wait(self) -> int:
        """Wait for the process to exit (the loop's child watcher reaps it), SIGKILL its process group (a
        tool's children die with the worker), and give its output ``PIPE_DRAIN`` seconds to end: a
        process outside the group holding the pipes cannot hold this up."""
        assert self.process is not None
        code = await self.process.wait()
        kill_group(self.process.pid)
        if self._pumps:
            _, late = await asyncio.wait(self._pumps, timeout=PIPE_DRAIN)
            for pump in late:
                pump.cancel()
            await asyncio.gather(*self._pumps, return_exceptions=True)
        for pipe in self._pipes:
            pipe.close()
        self._pumps, self._pipes = [], []
        return code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process; a no-op when it has already exited."""
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                pass

    async def _pump(self, stream: asyncio.StreamReader, level: int) -> None:
        """Forward each line to the supervisor's log, prefixed with the worker id, never split mid-line."""
        worker_logger = logging.getLogger(f"mcp_supervisor.worker.{self.worker_id}")
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over LINE_LIMIT: take what is buffered
                raw = await stream.read(LINE_LIMIT)
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\n")
            event = _json_event(line) if self.json_logs else None
            if event is not None:
                level = _LEVELS.get(str(event.get("level", "")).upper(), level)
                extra: dict[str, Any] = {key: event[key] for key in ("tool", "call_id") if key in event}
                message = str(event.get("message", ""))
                if "exception" in event:
                    message = f"{message}\n{event['exception']}"
                worker_logger.log(level, "%s", message, extra={"worker": self.worker_id, **extra})
                continue
            head, _, rest = line.partition(" ")
            if head in _LEVELS:
                level = _LEVELS[head]
                line = rest
            worker_logger.log(level, "[%s] %s", self.worker_id, line, extra={"worker": self.worker_id})


def _json_event(line: str) -> dict[str, Any] | None:
    """The fields of a JSON log line from a worker, or None for anything else (a tool's own print)."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "message" in event else None


def describe_exit(code: int) -> str:
    """How a worker ended: ``killed by SIGKILL``, ``exit code 5 (orphaned: ...)`` for the codes a worker
    ends with on purpose (``shared.exits.WORKER_EXITS``), else ``exit code 70``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    meaning = WORKER_EXITS.get(code)
    return f"exit code {code}" + (f" ({meaning})" if meaning else "")
