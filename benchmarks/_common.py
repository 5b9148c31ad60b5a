"""What every benchmark of ``python -m benchmarks`` shares: the run's state, its children, HTTP servers,
the load generator (``wrk``) and the shape of a result.

Processes: every child is started through a tiny ``python -c`` trampoline that asks Linux to SIGKILL it
when this process dies (``PR_SET_PDEATHSIG``, which survives ``exec``), checks its parent is still this
process (closing the race), then ``exec``-s the real program (the supervisor, the SDK-only server, ``wrk``,
``py-spy``); the pid stays the same. Children run in their own session, so a Ctrl-C in the terminal reaches
only this process, which then stops them itself, by pid: SIGTERM, a bounded wait, SIGKILL. The worker
processes of a supervisor are recorded by pid (from ``/status``) and SIGKILLed by pid if they outlive
their supervisor (they would also die by their own ``PR_SET_PDEATHSIG``). ``benchmarks.hop.Children``
tracks them all; a child that exits on its own ends the benchmark that started it, naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil

from benchmarks.hop import Children, _machine_cpu, _Recorder, child_env

logger = logging.getLogger("benchmarks")

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROTOCOL_VERSION = "2026-07-28"
"""The stateless protocol era every HTTP benchmark speaks: one self-contained POST per call."""
BENCH_TOOLS = ("benchmarks.noop_tools", "benchmarks.bench_tools")
START_DEADLINE = 30.0
STOP_GRACE = 5.0
"""How long a server gets to exit after SIGTERM before SIGKILL."""
WRK_TIMEOUT = 10
"""wrk's per-request timeout, seconds (its default of 2 s would cut the stalls the isolation run shows)."""

TRAMPOLINE = (
    "import ctypes, os, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG, kept across exec\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(3)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


class BenchmarkError(RuntimeError):
    """A benchmark could not produce figures it can stand behind (the message says why)."""


# -- results -----------------------------------------------------------------------------------------


@dataclass
class Target:
    """One target of the issue, with the figure it is judged on and the ratio against the run's baseline.

    ``measured`` is compared with ``limit`` (``better`` says which way is good); for a target stated as a
    ratio (``≥ 4× the SDK-only server``) the two are ratios, for an absolute one (``≤ 150 µs``) absolute
    values. ``ratio`` is always the figure divided by its baseline of the same run (``ratio_of`` names it).
    """

    key: str
    what: str
    target: str
    limit: float | None
    better: Literal["lower", "higher"]
    measured: float | None
    ratio: float | None
    ratio_of: str
    absolute: str
    note: str = ""
    unavailable: str | None = None
    """Set when there is nothing to measure yet (the reason is shown instead of figures)."""

    @property
    def met(self) -> bool | None:
        if self.unavailable is not None or self.measured is None or self.limit is None:
            return None
        if math.isnan(self.measured):
            return None
        return self.measured <= self.limit if self.better == "lower" else self.measured >= self.limit

    @property
    def verdict(self) -> str:
        if self.unavailable is not None:
            return self.unavailable
        met = self.met
        return "not measured" if met is None else ("met" if met else "not met")

    @property
    def score(self) -> float | None:
        """How the figure stands against the target: 1 is the target, above 1 is better than it."""
        if self.met is None or self.measured is None or self.limit is None:
            return None
        if self.better == "lower":
            return self.limit / self.measured if self.measured > 0 else math.inf
        return self.measured / self.limit


@dataclass
class ContextRow:
    """A figure without a target, shown for context (a baseline's own behaviour, a second concurrency)."""

    what: str
    ratio: float | None
    ratio_of: str
    absolute: str


@dataclass
class Section:
    """What one benchmark produced."""

    name: str
    title: str
    targets: list[Target] = field(default_factory=list)
    context: list[ContextRow] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    """Markdown lines: how it was measured and the figures behind the table rows."""
    seconds: float = 0.0
    others: float = math.nan
    """Share of the machine's CPU time other processes used while this benchmark ran (0 on a quiet machine)."""
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """Figures other parts of the run use (the hop's p50 for the routing ratios, the e2e profile)."""


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Suite:
    quick: bool
    tmp: Path
    children: Children
    log: _Recorder
    sections: dict[str, Section] = field(default_factory=dict)
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
            if _alive(pid, created):
                killed.append(f"{name} (pid {pid})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            del self.watched[pid]
        return killed


def _alive(pid: int, created: float | None = None) -> bool:
    try:
        process = psutil.Process(pid)
        if created is not None and abs(process.create_time() - created) > 0.01:
            return False  # the pid was reused
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def others_share(start: tuple[float, float, float]) -> float:
    """Share of the machine's CPU time used by processes other than this run since ``start``
    (``hop._machine_cpu()``); this run's children count as this run once reaped."""
    busy0, ours0, wall0 = start
    busy1, ours1, wall1 = _machine_cpu()
    capacity = (wall1 - wall0) * (os.cpu_count() or 1)
    if capacity <= 0:
        return math.nan
    return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / capacity


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


async def spawn(
    suite: Suite, name: str, argv: Sequence[str], log_path: Path, *, exits_by_itself: bool = False
) -> asyncio.subprocess.Process:
    """Start ``argv`` (output to ``log_path``) in its own session, dying with this process."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", TRAMPOLINE, str(os.getpid()), *argv,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            env=child_env(), cwd=REPO_ROOT, start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(log)
    suite.children.add(name, process)
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


# -- HTTP servers ------------------------------------------------------------------------------------


def call_body(tool: str, arguments: dict[str, Any] | None = None, request_id: int = 1) -> str:
    """A 2026-07-28 ``tools/call`` request: self-contained, the era and capabilities in ``_meta``."""
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {
                "name": tool,
                "arguments": arguments or {},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        },
        separators=(",", ":"),
    )


def call_headers(tool: str) -> dict[str, str]:
    """The headers a 2026-07-28 request carries (the routing headers repeat the body's method and name)."""
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }


def parse_answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response, whether the server answered in JSON or as one SSE event."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        messages = [
            json.loads(line[5:])
            for line in response.text.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
        answers = [m for m in messages if "result" in m or "error" in m]
        if not answers:
            raise BenchmarkError(f"an SSE answer without a result: {response.text[:300]!r}")
        return answers[-1]  # type: ignore[no-any-return]
    return response.json()  # type: ignore[no-any-return]


async def call_tool(
    client: httpx.AsyncClient, url: str, tool: str, arguments: dict[str, Any] | None = None
) -> tuple[bool, str]:
    """One ``tools/call``: ``(ok, text)``; ``ok`` only for HTTP 200 with a result that is not an error."""
    response = await client.post(url, content=call_body(tool, arguments), headers=call_headers(tool))
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}: {response.text[:200]}"
    answer = parse_answer(response)
    result = answer.get("result")
    if not isinstance(result, dict):
        return False, f"no result: {json.dumps(answer)[:200]}"
    text = "".join(block.get("text", "") for block in result.get("content", []) if isinstance(block, dict))
    return not result.get("isError", False), text


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
        """One call by hand, refusing anything but HTTP 200 with a non-error result; returns the format."""
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                self.url, content=call_body(tool, arguments), headers=call_headers(tool)
            )
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


async def _wait_until(
    suite: Suite, process: asyncio.subprocess.Process, log_path: Path, what: str, probe: Any
) -> None:
    """Poll ``await probe()`` until it is true; fail at once when ``process`` exits, or after the deadline."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise BenchmarkError(f"{what} exited with code {process.returncode}:\n{tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError, OSError):
            if await probe():
                return
        await asyncio.sleep(0.05)
    raise BenchmarkError(f"{what} not ready within {START_DEADLINE:g} s:\n{tail(log_path)}")


async def start_supervisor(
    suite: Suite, name: str, *args: str, tools: Sequence[str] = BENCH_TOOLS, task_queue: bool = False
) -> HttpServer:
    """``python -m supervisor --port <free> --tools ...`` (plus ``args``), ready on every runtime; with
    ``task_queue``, the task-queue worker too, on a database in the run's private directory."""
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
        *(("--task-db", str(suite.tmp / f"{name}-tasks.db")) if task_queue else ("--no-task-queue",)),
    ]
    for module in tools:
        argv += ["--tools", module]
    process = await spawn(suite, name, [*argv, *args], log_path)
    server = HttpServer(name, "supervisor", process, port, log_path)
    try:
        async with httpx.AsyncClient(timeout=5) as client:

            async def ready() -> bool:
                return (await client.get(f"{server.base}/readyz")).status_code == 200

            await _wait_until(suite, process, log_path, f"supervisor {name}", ready)
            status = await server.status(client)
    except BaseException:
        await stop_process(suite, process)  # not ready, or the run is stopping: stop it by pid now
        raise
    server.workers = {w["id"]: w["pid"] for w in status["workers"] if w["pid"] is not None}
    for worker_id, pid in server.workers.items():
        suite.watch(f"{name}/{worker_id}", pid)
    return server


async def start_sdk_server(suite: Suite, name: str, flavour: str) -> HttpServer:
    """``python -m benchmarks.sdk_server --flavour F``, answering ``noop_asyncio``."""
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

            await _wait_until(suite, process, log_path, f"{flavour} server {name}", ready)
    except BaseException:
        await stop_process(suite, process)
        raise
    return server


async def stop_server(suite: Suite, server: HttpServer) -> None:
    """Stop a server by pid, then make sure none of its workers outlived it (by pid as well)."""
    await stop_process(suite, server.process)
    deadline = time.monotonic() + 3.0
    for worker_id, pid in server.workers.items():
        entry = suite.watched.get(pid)
        created = entry[1] if entry else None
        while _alive(pid, created) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if _alive(pid, created):
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


def rss_mb(pid: int) -> float:
    """Resident memory in MB (10⁶ bytes, the unit of the issue's targets)."""
    return float(psutil.Process(pid).memory_info().rss) / 1e6


def cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return math.nan
    return float(times.user + times.system)


# -- wrk ---------------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
-- Generated by benchmarks/_common.py: POSTs 2026-07-28 tools/call requests, counts every answer that is
-- not HTTP 200 with a non-error result, prints one machine-readable line at the end.
local names = {%(names)s}
local bodies = {%(bodies)s}
local n = #bodies
local i = 0
bad = 0  -- globals: done() reads them from every thread with thread:get
sample = ""
local threads = {}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "%(version)s"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = names[1]
wrk.body = bodies[1]

function setup(thread)
  table.insert(threads, thread)
end

if n > 1 then
  function request()
    i = i %% n + 1
    wrk.headers["Mcp-Name"] = names[i]
    return wrk.format(nil, nil, nil, bodies[i])
  end
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"isError":false', 1, true) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local b = 0
  local s = ""
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
    if s == "" then s = t:get("sample") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%%d,"duration_us":%%d,"bad":%%d,"socket_errors":%%d,"timeouts":%%d,' ..
    '"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d,"mean":%%.1f}\n',
    summary.requests, summary.duration, b, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  io.write("WRK_SAMPLE " .. s .. "\n")
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    bad: int
    socket_errors: int
    timeouts: int
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    mean_us: float
    sample: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan

    @property
    def failures(self) -> int:
        return self.bad + self.socket_errors + self.timeouts


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk_script(suite: Suite, calls: Sequence[tuple[str, dict[str, Any] | None]]) -> Path:
    """A Lua script cycling through ``calls`` (tool, arguments), written into the run's private directory."""
    names = ", ".join(_lua_string(tool) for tool, _ in calls)
    bodies = ", ".join(_lua_string(call_body(tool, arguments)) for tool, arguments in calls)
    script = WRK_SCRIPT % {"names": names, "bodies": bodies, "version": PROTOCOL_VERSION}
    path = suite.tmp / f"wrk-{abs(hash(script)):x}.lua"
    path.write_text(script)
    return path


async def run_wrk(
    suite: Suite,
    server: HttpServer,
    calls: Sequence[tuple[str, dict[str, Any] | None]],
    connections: int,
    seconds: int,
    *,
    allow_failures: bool = False,
) -> WrkResult:
    """``wrk -t1 -c<connections> -d<seconds>s`` against ``server``; refuses a run with any failed answer
    unless ``allow_failures``."""
    if suite.wrk is None:
        raise BenchmarkError("wrk is not installed (apt-get install wrk)")
    script = wrk_script(suite, calls)
    log_path = suite.tmp / "wrk.log"
    argv = [suite.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}s", "-s", str(script),
            server.url]  # fmt: skip
    process = await spawn(suite, "wrk", argv, log_path, exits_by_itself=True)
    try:
        code = await asyncio.wait_for(process.wait(), seconds + WRK_TIMEOUT + 15)
    finally:
        if process.returncode is None:
            await stop_process(suite, process, 1.0)
    output = log_path.read_text(errors="replace")
    line = next((x for x in output.splitlines() if x.startswith("WRK_RESULT ")), None)
    if code != 0 or line is None:
        first = next(
            (x for x in output.splitlines() if "error" in x.lower() or "PANIC" in x), "no result line"
        )
        raise BenchmarkError(f"wrk failed (exit {code}): {first}\n{output[-2000:]}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    sample = next((x for x in output.splitlines() if x.startswith("WRK_SAMPLE ")), "").removeprefix(
        "WRK_SAMPLE "
    )
    result = WrkResult(
        data["requests"], data["duration_us"] / 1e6, data["bad"], data["socket_errors"], data["timeouts"],
        data["p50"], data["p90"], data["p99"], data["max"], data["mean"], sample,
    )  # fmt: skip
    if result.failures and not allow_failures:
        raise BenchmarkError(
            f"{server.name}: {result.bad} bad answers, {result.socket_errors} socket errors, {result.timeouts} "
            f"timeouts out of {result.requests} requests (first: {result.sample!r}); figures refused"
        )
    return result


# -- figures -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or math.isnan(value) or math.isnan(base) or base == 0:
        return None
    return value / base


def fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if value == 0:
        return "0×"
    if value < 0.01:
        return f"{value:.4f}×"
    if value < 10:
        return f"{value:.2f}×"
    return f"{value:,.0f}×" if value >= 100 else f"{value:.1f}×"


def fmt_us(value: float) -> str:
    """A duration given in µs, in the unit that reads best."""
    if math.isnan(value):
        return "—"
    if value >= 1_000_000:
        return f"{value / 1e6:.2f} s"
    if value >= 10_000:
        return f"{value / 1e3:.0f} ms"
    if value >= 1_000:
        return f"{value / 1e3:.1f} ms"
    return f"{value:.0f} µs" if value >= 10 else f"{value:.2f} µs"


def fmt_rate(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}/s"
