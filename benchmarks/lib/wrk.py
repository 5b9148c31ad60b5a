"""The HTTP load generator: ``wrk -t1`` driven by ``wrk.lua``, which POSTs the requests of a ``Load`` in
turn (2026-07-28 ``tools/call`` requests unless told, or requests on handshake-era sessions, each with
its own headers) and counts every answer that is not HTTP 200 with ``"isError":false``.

A run with any such answer, socket error or timeout is refused (``BenchmarkError``) unless the caller
allows failures: every request counted was answered successfully. One C process generates the load, so
the load generator is not what a Python server's figures measure.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.lib.mcp_client import PROTOCOL_VERSION, call_body
from benchmarks.lib.results import BenchmarkError
from benchmarks.lib.servers import HttpServer
from benchmarks.lib.suite import Suite, run_to_end

WRK_TIMEOUT = 10
"""wrk's per-request timeout, seconds (its default of 2 s would cut the stalls the isolation run shows)."""
SCRIPT = string.Template((Path(__file__).parent / "wrk.lua").read_text())

Calls = Sequence[tuple[str, dict[str, Any] | None]]
"""What a run cycles through: (tool, arguments) pairs."""


@dataclass
class WrkResult:
    """One wrk run: latencies in µs as wrk measured them, failures as the script counted them."""

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
    """The first bad answer (status and the start of its body)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan

    @property
    def failures(self) -> int:
        return self.bad + self.socket_errors + self.timeouts


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


Requests = Sequence[tuple[str, str]]
"""What a run of ``run_wrk_requests`` cycles through: (``Mcp-Name`` header, JSON-RPC body) pairs."""
EXPECT_RESULT = '"isError":false'
"""What a good ``tools/call`` answer holds."""


@dataclass
class Load:
    """What one wrk run sends: ``requests`` in turn, each a (headers of its own, JSON-RPC body) pair, all
    with ``base_headers``; an answer is good when it is HTTP 200 and holds ``expect``."""

    requests: Sequence[tuple[dict[str, str], str]]
    base_headers: dict[str, str]
    expect: str = EXPECT_RESULT


def stateless_load(requests: Requests, *, method: str = "tools/call", expect: str = EXPECT_RESULT) -> Load:
    """2026-07-28 requests of ``method``: the routing headers, the ``Mcp-Name`` of each request."""
    base = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
        "Mcp-Method": method,
    }
    return Load([({"Mcp-Name": name}, body) for name, body in requests], base, expect)


def wrk_script(suite: Suite, load: Load) -> Path:
    """A Lua script cycling through ``load``'s requests and refusing answers without its ``expect``,
    written into the run's private directory."""
    extra = ", ".join(
        "{"
        + ", ".join(f"[ {_lua_string(name)} ]={_lua_string(value)}" for name, value in headers.items())
        + "}"
        for headers, _ in load.requests
    )
    bodies = ", ".join(_lua_string(body) for _, body in load.requests)
    base = "\n".join(
        f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}"
        for name, value in load.base_headers.items()
    )
    script = SCRIPT.substitute(base=base, extra=extra, bodies=bodies, expect=_lua_string(load.expect))
    path = suite.tmp / f"wrk-{abs(hash(script)):x}.lua"
    path.write_text(script)
    return path


async def run_wrk(
    suite: Suite,
    server: HttpServer,
    calls: Calls,
    connections: int,
    seconds: int,
    *,
    allow_failures: bool = False,
) -> WrkResult:
    """``wrk -t1 -c<connections> -d<seconds>s`` of ``tools/call`` requests against ``server``.

    Raises:
        BenchmarkError: wrk is not installed or failed, or (unless ``allow_failures``) an answer was bad.
        TimeoutError: wrk ran far longer than asked (it is stopped first).
    """
    requests = [(tool, call_body(tool, arguments)) for tool, arguments in calls]
    return await run_wrk_requests(
        suite, server, requests, connections, seconds, allow_failures=allow_failures
    )


async def run_wrk_requests(
    suite: Suite,
    server: HttpServer,
    requests: Requests,
    connections: int,
    seconds: int,
    *,
    method: str = "tools/call",
    expect: str = EXPECT_RESULT,
    allow_failures: bool = False,
) -> WrkResult:
    """``wrk -t1 -c<connections> -d<seconds>s`` cycling through 2026-07-28 ``requests`` of ``method``; an
    answer without ``expect`` is bad.

    Raises:
        BenchmarkError: wrk is not installed or failed, or (unless ``allow_failures``) an answer was bad.
        TimeoutError: wrk ran far longer than asked (it is stopped first).
    """
    load = stateless_load(requests, method=method, expect=expect)
    return await run_wrk_load(suite, server, load, connections, seconds, allow_failures=allow_failures)


async def run_wrk_load(
    suite: Suite,
    server: HttpServer,
    load: Load,
    connections: int,
    seconds: int,
    *,
    allow_failures: bool = False,
) -> WrkResult:
    """``wrk -t1 -c<connections> -d<seconds>s`` cycling through ``load``'s requests.

    Raises:
        BenchmarkError: wrk is not installed or failed, or (unless ``allow_failures``) an answer was bad.
        TimeoutError: wrk ran far longer than asked (it is stopped first).
    """
    if suite.wrk is None:
        raise BenchmarkError("wrk is not installed (apt-get install wrk)")
    script = wrk_script(suite, load)
    log_path = suite.tmp / f"wrk-{server.name}.log"  # one per server: runs against two may overlap
    argv = [suite.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}s", "-s", str(script),
            server.url]  # fmt: skip
    code = await run_to_end(suite, "wrk", argv, log_path, seconds + WRK_TIMEOUT + 15)
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


def combined_rate(runs: Sequence[WrkResult]) -> float:
    """Requests per second over several runs: all their requests over all their seconds."""
    seconds = sum(run.seconds for run in runs)
    return sum(run.requests for run in runs) / seconds if seconds else math.nan


async def warm_up(suite: Suite, server: HttpServer, calls: Calls, connections: int) -> None:
    """Check each of ``calls`` once by hand (``HttpServer.verify``), then run wrk on them for 1 s, untimed.

    Raises:
        BenchmarkError: a call did not succeed.
    """
    for tool, arguments in calls:
        await server.verify(tool, arguments)
    await run_wrk(suite, server, calls, connections, 1)
