"""The HTTP servers a benchmark measures, each started by the run on a free loopback port: the
supervisor (``python -m supervisor``) and the single-process baselines (``benchmarks.sdk_server``).

A server counts as started once it answers (``/readyz`` for the supervisor, a ``noop_asyncio`` call for a
baseline) within ``START_DEADLINE``; one that exits first fails the benchmark with the end of its log.
``servers()`` stops every server started inside it, whatever happens, and makes sure no supervisor leaves
a worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.lib.children import alive, tail
from benchmarks.lib.machine import cpu_seconds
from benchmarks.lib.mcp_client import call_tool, parse_answer, post_call
from benchmarks.lib.results import BenchmarkError
from benchmarks.lib.suite import Suite, spawn, stop_process

logger = logging.getLogger("benchmarks")

BENCH_TOOLS = ("benchmarks.noop_tools", "benchmarks.bench_tools")
START_DEADLINE = 30.0
WORKERS_OUTLIVE = 3.0
"""How long a supervisor's workers may take to exit after it did before they are SIGKILLed."""


@dataclass
class HttpServer:
    """A server this run started: the supervisor or an SDK-only baseline."""

    name: str
    kind: str
    process: asyncio.subprocess.Process
    port: int
    log_path: Path
    workers: dict[str, int] = field(default_factory=dict)
    """Worker id → pid, for a supervisor (from ``/status`` once ready)."""
    answer_format: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def status(self, client: httpx.AsyncClient) -> dict[str, Any]:
        return (await client.get(f"{self.base}/status")).json()  # type: ignore[no-any-return]

    async def verify(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        """One call by hand, refusing anything but HTTP 200 with a non-error result; returns the format.

        Raises:
            BenchmarkError: the call did not succeed.
        """
        async with httpx.AsyncClient(timeout=30) as client:
            response = await post_call(client, self.url, tool, arguments)
            if response.status_code != 200:
                raise BenchmarkError(
                    f"{self.name}: {tool} answered HTTP {response.status_code}: {response.text[:300]}"
                )
            answer = parse_answer(response)
            result = answer.get("result")
            if not isinstance(result, dict) or result.get("isError") or "content" not in result:
                raise BenchmarkError(f"{self.name}: {tool} did not succeed: {json.dumps(answer)[:300]}")
        kind = response.headers.get("content-type", "?").split(";")[0]
        self.answer_format = (
            "SSE" if kind == "text/event-stream" else "JSON" if kind == "application/json" else kind
        )
        return self.answer_format


class CoreMeter:
    """The cores each process of a server uses over a stretch of work (CPU seconds ÷ wall seconds): its
    front and, for a supervisor, each worker. Starts counting when made."""

    def __init__(self, server: HttpServer) -> None:
        self.pids = {"front": server.pid, **server.workers}
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def cores(self, seconds: float) -> dict[str, float]:
        """Process name → cores used since this meter was made, over ``seconds`` of wall time."""
        return {name: (cpu_seconds(pid) - self.before[name]) / seconds for name, pid in self.pids.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_until(
    process: asyncio.subprocess.Process, log_path: Path, what: str, ready: Callable[[], Awaitable[bool]]
) -> None:
    """Poll ``await ready()`` until it is true; fail at once when ``process`` exits, or after the deadline."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise BenchmarkError(f"{what} exited with code {process.returncode}:\n{tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError, OSError):
            if await ready():
                return
        await asyncio.sleep(0.05)
    raise BenchmarkError(f"{what} not ready within {START_DEADLINE:g} s:\n{tail(log_path)}")


async def start_supervisor(
    suite: Suite,
    name: str,
    *args: str,
    tools: Sequence[str] = BENCH_TOOLS,
    task_queue: bool = False,
    task_db: str | None = None,
) -> HttpServer:
    """``python -m supervisor --port <free> --tools ...`` (plus ``args``), ready on every runtime; with
    ``task_queue``, the task-queue worker too, on ``task_db`` (a path or a ``postgresql://`` URL; default:
    a SQLite file in the run's private directory).

    Raises:
        BenchmarkError: it exited, or was not ready within ``START_DEADLINE`` (it is stopped first).
    """
    port = free_port()
    log_path = suite.tmp / f"{name}.log"
    argv = [
        sys.executable,
        "-m",
        "supervisor",
        "--port",
        str(port),
        "--shutdown-grace",
        "1",
        *(
            ("--task-db", task_db or str(suite.tmp / f"{name}-tasks.db"))
            if task_queue
            else ("--no-task-queue",)
        ),
    ]
    for module in tools:
        argv += ["--tools", module]
    process = await spawn(suite, name, [*argv, *args], log_path)
    server = HttpServer(name, "supervisor", process, port, log_path)
    try:
        async with httpx.AsyncClient(timeout=5) as client:

            async def ready() -> bool:
                return (await client.get(f"{server.base}/readyz")).status_code == 200

            await _wait_until(process, log_path, f"supervisor {name}", ready)
            status = await server.status(client)
    except BaseException:
        await stop_process(suite, process)  # not ready, or the run is stopping: stop it by pid now
        raise
    server.workers = {w["id"]: w["pid"] for w in status["workers"] if w["pid"] is not None}
    for worker_id, pid in server.workers.items():
        suite.watch(f"{name}/{worker_id}", pid)
    return server


async def start_sdk_server(suite: Suite, name: str, flavour: str) -> HttpServer:
    """``python -m benchmarks.sdk_server --flavour F``, answering ``noop_asyncio``.

    Raises:
        BenchmarkError: it exited, or was not answering within ``START_DEADLINE`` (it is stopped first).
    """
    port = free_port()
    log_path = suite.tmp / f"{name}.log"
    argv = [sys.executable, "-m", "benchmarks.sdk_server", "--port", str(port), "--flavour", flavour,
            "--parent-pid", str(os.getpid())]  # fmt: skip
    process = await spawn(suite, name, argv, log_path)
    server = HttpServer(name, flavour, process, port, log_path)
    try:
        async with httpx.AsyncClient(timeout=5) as client:

            async def ready() -> bool:
                ok, _ = await call_tool(client, server.url, "noop_asyncio")
                return ok

            await _wait_until(process, log_path, f"{flavour} server {name}", ready)
    except BaseException:
        await stop_process(suite, process)
        raise
    return server


async def stop_server(suite: Suite, server: HttpServer) -> None:
    """Stop a server by pid, then make sure none of its workers outlived it (by pid as well)."""
    await stop_process(suite, server.process)
    deadline = time.monotonic() + WORKERS_OUTLIVE
    for worker_id, pid in server.workers.items():
        entry = suite.watched.get(pid)
        created = entry[1] if entry else None
        while alive(pid, created) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if alive(pid, created):
            logger.warning("%s (pid %d) outlived %s; SIGKILL", worker_id, pid, server.name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        suite.watched.pop(pid, None)


@contextlib.asynccontextmanager
async def servers(suite: Suite) -> AsyncIterator[list[HttpServer]]:
    """A list to append started servers to; every one of them is stopped on the way out, whatever happens."""
    started: list[HttpServer] = []
    try:
        yield started
    finally:
        await asyncio.gather(*(stop_server(suite, server) for server in started), return_exceptions=True)


async def supervisor_workers(server: HttpServer) -> dict[str, int]:
    """Worker id → pid of the workers a supervisor runs now."""
    async with httpx.AsyncClient(timeout=5) as client:
        status = await server.status(client)
    return {w["id"]: w["pid"] for w in status["workers"] if w["pid"] is not None}
