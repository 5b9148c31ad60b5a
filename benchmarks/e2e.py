"""2. End to end over HTTP with the official protocol: ``tools/call`` on a no-op tool.

Servers, all started by this run on loopback and running at the same time (idle while another is measured):

- the supervisor, ``python -m supervisor --tools benchmarks.noop_tools --tools benchmarks.bench_tools``
  (defaults: one asyncio and one Trio worker, pinned), called on ``noop_asyncio``;
- **the baseline**: ``benchmarks.sdk_server --flavour mcpserver``, a single-process server built with the
  ``mcp`` SDK alone (``MCPServer.streamable_http_app()`` on uvicorn + uvloop), serving the same tool body;
- for context: the same supervisor with ``fast_path = false`` (the SDK answers every request: what the
  fast path buys), the SDK's low-level ``Server`` (what the supervisor's front is built on) in one process, and
  a bare ASGI app answering the same bytes without MCP (the ceiling of uvicorn + wrk here: how far the
  load generator is from being the limit).

Load: ``wrk -t1`` with a generated Lua script POSTing a 2026-07-28 ``tools/call`` (headers
``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``, ``Accept: application/json, text/event-stream``,
``_meta`` with the protocol version and client capabilities); the script counts every answer that is not
HTTP 200 with ``"isError":false`` and a run with any is refused. Before any load each server answers one
call by hand (checked: 200, a result, JSON or SSE recorded). Each server gets a 1 s warm-up, then
``rounds`` interleaved rounds (every server in turn, rotating order) at each concurrency; req/s is the sum
of requests over the sum of durations, p50/p99 the median of the rounds' wrk percentiles.

Three more client shapes (``benchmarks.lib.shapes``, which says which clients send which), at 32
connections in the same rotation as the first, each against the supervisor, the baseline and the
supervisor without the fast path:

- **stateless with a progress token and a log level** in ``_meta`` (a new token per request, level
  ``info``); the no-op sends no notification, so every server answers it in JSON, as the SDK's rule says;
- **fastmcp's client**: the same era, as fastmcp 4.0.10 sends every call (its client info, level
  ``debug``, the request id as the token);
- **handshake-era sessions** (2025-11-25): ``SESSIONS`` sessions opened on each server before the load,
  calls without ``_meta``; every server answers them as an event stream (the SDK's default response
  mode of a stateful server, which the baseline and the supervisor both use).

Then a last round at 32 connections against the supervisor only, with py-spy sampling it (not counted in
the figures): the profile behind "What limits it".
"""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass, field

from benchmarks import pyspy
from benchmarks.lib.children import tail
from benchmarks.lib.results import ContextRow, Section, Target
from benchmarks.lib.servers import CoreMeter, HttpServer, servers, start_sdk_server, start_supervisor
from benchmarks.lib.shapes import SESSIONS, fastmcp_load, notify_load, session_load
from benchmarks.lib.stats import fmt_rate, fmt_ratio, fmt_us, median, ratio
from benchmarks.lib.suite import Suite, run_to_end
from benchmarks.lib.timing import rotations
from benchmarks.lib.wrk import Load, WrkResult, combined_rate, run_wrk, run_wrk_load, warm_up

NAME = "e2e"
TITLE = "End to end over HTTP (tools/call, 2026-07-28)"
TOOL = "noop_asyncio"
CONCURRENCIES = (1, 32)
TARGET_RATE = 4.0
SESSION_TARGET_RATE = 3.0
"""Issue 15's target for the handshake-era shape: a session is served with more state than a stateless call."""
TAIL_VS_BASELINE = 0.5
TAIL_VS_P50 = 3.0
"""Issue 15's tail target, for every shape at 32 connections: p99 ≤ 0.5× the SDK-only server's p99 (which
also makes targets 1 and 2's "p99 no worse") and ≤ 3× the supervisor's own p50."""


@dataclass
class Figures:
    server: HttpServer
    label: str
    runs: dict[int, list[WrkResult]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    """Cores used at 32 connections by each process (front, workers): CPU seconds ÷ wall seconds."""
    load: Load | None = None
    """The requests of this client shape; None for the plain call."""

    def rate(self, connections: int) -> float:
        return combined_rate(self.runs.get(connections, []))

    def p50(self, connections: int) -> float:
        return median([run.p50_us for run in self.runs.get(connections, [])])

    def p99(self, connections: int) -> float:
        return median([run.p99_us for run in self.runs.get(connections, [])])

    def requests(self, connections: int) -> int:
        return sum(run.requests for run in self.runs.get(connections, []))


CLIENT_SHAPES = [
    "Which clients send which shape (`benchmarks/lib/shapes.py`; every server answers the same requests):",
    "",
    "- **plain stateless 2026-07-28** (the table above): the SDK's own client in the 2026-07-28 era (mcp ≥ 2.3) "
    "when the caller passes no progress callback: the era and capabilities in `_meta`, no notification asked for;",
    "- **progress token + log level**: a 2026-07-28 client that passes a progress callback and asks for log "
    "messages (a new token per call, level `info`);",
    "- **fastmcp's client**: fastmcp 4.0.10 (on mcp 2.3.0), recorded against the supervisor: it speaks 2026-07-28 "
    "to a server that offers it and sends every call with its client info, level `debug` and the request id as "
    "the progress token (its client always passes a progress handler);",
    f"- **{SESSIONS} handshake-era sessions** (2025-11-25, `initialize` then calls with `Mcp-Session-Id`, no "
    "`_meta`): the TypeScript SDK's `Client.callTool` without `onprogress`, the MCP Inspector and most desktop "
    "clients; each server answers as an event stream (the SDK's default for a stateful server, the baseline's "
    "and the supervisor's mode). wrk keeps no per-connection state, so each request goes to the next session in "
    "turn (about one in flight per session).",
]
SHAPE_TABLE = [
    "| server | requests | req/s | ÷ baseline req/s | p50 | p99 | p99 ÷ baseline p99 | front CPU per call |",
    "|---|--:|--:|--:|--:|--:|--:|--:|",
]


@dataclass
class Shape:
    """One client shape's figures: the supervisor, the baseline, the supervisor without the fast path."""

    key: str
    title: str
    figures: list[Figures]

    @property
    def pair(self) -> tuple[Figures, Figures]:
        """The supervisor's figures and the baseline's."""
        return self.figures[0], self.figures[1]


async def _shape(started: list[HttpServer], key: str, title: str, load: Load | None) -> Shape:
    """The figures of a client shape on the supervisor (``started[0]``), the baseline (``started[1]``)
    and the supervisor without the fast path (``started[4]``); ``load`` None: sessions opened now on
    each server (``shapes.session_load``).

    Raises:
        BenchmarkError: a server refused to open a session.
    """
    labels = [
        "**supervisor**",
        "SDK only: `MCPServer`, one process (**baseline**)",
        "supervisor with `fast_path = false`",
    ]
    figures = []
    for server, label in zip((started[0], started[1], started[4]), labels, strict=True):
        figures.append(Figures(server, label, load=load or await session_load(server.url, TOOL)))
    return Shape(key, title[0].upper() + title[1:], figures)


def _cpu_per_call(figures: Figures, connections: int) -> float:
    """Microseconds of the front process's CPU per call (cores used ÷ calls per second)."""
    return figures.cpu.get("front", math.nan) / figures.rate(connections) * 1e6


async def _measure(
    suite: Suite, figures: Figures, connections: int, seconds: int, *, record: bool = True
) -> None:
    """One wrk run of ``figures``'s requests, added to its figures unless ``record`` is false."""
    meter = CoreMeter(figures.server)
    if figures.load is None:
        result = await run_wrk(suite, figures.server, [(TOOL, None)], connections, seconds)
    else:
        result = await run_wrk_load(suite, figures.server, figures.load, connections, seconds)
    if not record:
        return
    figures.runs.setdefault(connections, []).append(result)
    if connections == max(CONCURRENCIES):
        for name, used in meter.cores(result.seconds).items():
            figures.cpu[name] = used if name not in figures.cpu else (figures.cpu[name] + used) / 2


async def profile_supervisor(suite: Suite, server: HttpServer, seconds: int) -> pyspy.Profile | str:
    """py-spy on the supervisor during a wrk run at 32 connections; the profile, or why there is none."""
    if suite.py_spy is None:
        return "py-spy is not installed (pip install -e '.[bench]')"
    output = suite.tmp / "e2e-supervisor.pyspy.txt"
    log_path = suite.tmp / "py-spy.log"
    argv = [suite.py_spy, "record", "--pid", str(server.pid), "--duration", str(seconds), "--rate", "200",
            "--format", "raw", "--full-filenames", "-F", "--threads", "--output", str(output)]  # fmt: skip
    load = asyncio.ensure_future(run_wrk(suite, server, [(TOOL, None)], 32, seconds + 2))
    try:
        await asyncio.sleep(0.5)
        code = await run_to_end(suite, "py-spy", argv, log_path, seconds + 20)
        await load
    finally:
        if not load.done():
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
    if code != 0 or not output.exists():
        return f"py-spy failed (exit {code}): {tail(log_path, 5)}"
    profile = pyspy.parse(output)
    profile.raw = output.read_text(errors="replace")
    return profile


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    rounds = suite.pick(3, 1)
    seconds = 2
    async with servers(suite) as started:
        no_fast_path = suite.tmp / "no-fast-path.toml"
        no_fast_path.write_text("fast_path = false\n")
        started.append(await start_supervisor(suite, "e2e-supervisor"))
        started.append(await start_sdk_server(suite, "e2e-mcpserver", "mcpserver"))
        started.append(await start_sdk_server(suite, "e2e-lowlevel", "lowlevel"))
        started.append(await start_sdk_server(suite, "e2e-asgi", "asgi"))
        started.append(await start_supervisor(suite, "e2e-supervisor-sdk", "--config", str(no_fast_path)))
        supervisor, sdk, lowlevel, bare, through_sdk = (
            Figures(started[0], "**supervisor** (1 asyncio + 1 Trio worker)"),
            Figures(started[1], "SDK only: `MCPServer`, one process (**baseline**)"),
            Figures(started[2], "SDK only: low-level `Server`, one process"),
            Figures(started[3], "bare ASGI app on uvicorn, no MCP (ceiling of uvicorn + wrk)"),
            Figures(started[4], "supervisor with `fast_path = false` (the SDK answers every request)"),
        )
        measured = [supervisor, sdk, lowlevel, through_sdk]
        shapes = [
            await _shape(started, "notify", "progress token + log level", notify_load(TOOL)),
            await _shape(started, "fastmcp", "fastmcp's client", fastmcp_load(TOOL)),
            await _shape(started, "session", f"{SESSIONS} handshake-era sessions", None),
        ]
        for figures in (*measured, bare):
            await warm_up(suite, figures.server, [(TOOL, None)], 32)
        for figures in (f for shape in shapes for f in shape.figures):  # each shape's requests, untimed
            await _measure(suite, figures, 32, 1, record=False)
        for connections in CONCURRENCIES:
            # every shape in the same rotation: load that comes and goes weighs on them alike
            rotated = measured + [f for shape in shapes for f in shape.figures]
            for order in rotations(rotated if connections == max(CONCURRENCIES) else measured, rounds):
                for figures in order:
                    await _measure(suite, figures, connections, seconds)
            await _measure(suite, bare, connections, seconds)
        profile = await profile_supervisor(suite, supervisor.server, suite.pick(5, 3))
    section.data["profile"] = profile
    section.data["cpu"] = {f.server.name: dict(f.cpu) for f in (*measured, bare)}
    section.data["rates"] = {f.server.name: f.rate(32) for f in (*measured, bare)}

    top = max(CONCURRENCIES)
    notify, fastmcp, session = shapes
    section.targets += [
        *_shape_targets("e2e", "", supervisor, sdk, top, "÷ SDK-only `MCPServer`", TARGET_RATE),
        *_shape_targets("e2e-notify", ", calls with a progress token and a log level", *notify.pair, top,
                        "÷ SDK-only `MCPServer`, same requests", TARGET_RATE),
        *_shape_targets("e2e-session", f", {SESSIONS} handshake-era sessions (2025-11-25)", *session.pair, top,
                        "÷ SDK-only `MCPServer` (stateful, event-stream answers), same requests",
                        SESSION_TARGET_RATE),
    ]  # fmt: skip
    ours, baseline = fastmcp.pair
    section.context += [
        ContextRow(
            f"fastmcp's client (its request shape): requests/s at {top} connections",
            ratio(ours.rate(top), baseline.rate(top)),
            "÷ SDK-only `MCPServer`, same requests",
            f"{fmt_rate(ours.rate(top))} vs {fmt_rate(baseline.rate(top))}; p99 "
            f"{fmt_ratio(ratio(ours.p99(top), baseline.p99(top)))} ({fmt_us(ours.p99(top))} vs {fmt_us(baseline.p99(top))})",
        ),
    ]
    section.context += [
        ContextRow(
            "e2e requests/s at 1 connection",
            ratio(supervisor.rate(1), sdk.rate(1)),
            "÷ SDK-only `MCPServer`",
            f"{fmt_rate(supervisor.rate(1))} vs {fmt_rate(sdk.rate(1))}",
        ),
        ContextRow(
            "e2e p50 latency at 1 connection",
            ratio(supervisor.p50(1), sdk.p50(1)),
            "÷ SDK-only `MCPServer`",
            f"{fmt_us(supervisor.p50(1))} vs {fmt_us(sdk.p50(1))}",
        ),
        ContextRow(
            f"e2e requests/s at {top} connections, low-level SDK `Server` in one process",
            ratio(lowlevel.rate(top), sdk.rate(top)),
            "÷ SDK-only `MCPServer`",
            f"{fmt_rate(lowlevel.rate(top))} vs {fmt_rate(sdk.rate(top))}",
        ),
        ContextRow(
            f"the fast path: requests/s at {top} connections ÷ the same supervisor without it",
            ratio(supervisor.rate(top), through_sdk.rate(top)),
            "÷ supervisor with `fast_path = false`",
            f"{fmt_rate(supervisor.rate(top))} vs {fmt_rate(through_sdk.rate(top))}",
        ),
        ContextRow(
            f"front CPU per call at {top} connections",
            ratio(_cpu_per_call(supervisor, top), _cpu_per_call(sdk, top)),
            "÷ SDK-only `MCPServer` CPU per call",
            f"{fmt_us(_cpu_per_call(supervisor, top))} vs {fmt_us(_cpu_per_call(sdk, top))} "
            f"(without the fast path {fmt_us(_cpu_per_call(through_sdk, top))})",
        ),
        ContextRow(
            f"tail of the bare ASGI app at {top} connections: p99 ÷ p50 (the machine's and wrk's own tail)",
            ratio(bare.p99(top), bare.p50(top)),
            "÷ its p50, same run",
            f"p99 {fmt_us(bare.p99(top))}, p50 {fmt_us(bare.p50(top))}; the SDK-only server's p99 ÷ p50: "
            f"{fmt_ratio(ratio(sdk.p99(top), sdk.p50(top)))}",
        ),
        ContextRow(
            f"load generator headroom: bare ASGI app at {top} connections",
            ratio(bare.rate(top), supervisor.rate(top)),
            "÷ supervisor",
            f"{fmt_rate(bare.rate(top))} vs {fmt_rate(supervisor.rate(top))}",
        ),
    ]
    section.details += [
        (
            f"`wrk -t1` (Lua script: 2026-07-28 `tools/call` of `{TOOL}`; any answer other than HTTP 200 with "
            f'`"isError":false` refuses the run), {rounds} interleaved round(s) of {seconds} s per server and '
            "concurrency after a 1 s warm-up; req/s = requests ÷ seconds over the rounds, p50/p99 = median of "
            "the rounds' wrk percentiles. Every server answered a call checked by hand first; answer format: "
            + ", ".join(f"{f.server.name} {f.server.answer_format}" for f in (*measured, bare))
            + "."
        ),
        "",
        "| server | connections | requests | req/s | ÷ baseline req/s | p50 | p99 | p99 ÷ baseline p99 |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for connections in CONCURRENCIES:
        for figures in (*measured, bare):
            section.details.append(
                f"| {figures.label} | {connections} | {figures.requests(connections):,} "
                f"| {fmt_rate(figures.rate(connections))} "
                f"| {fmt_ratio(ratio(figures.rate(connections), sdk.rate(connections)))} "
                f"| {fmt_us(figures.p50(connections))} | {fmt_us(figures.p99(connections))} "
                f"| {fmt_ratio(ratio(figures.p99(connections), sdk.p99(connections)))} |"
            )
    section.details += ["", *CLIENT_SHAPES]
    for shape in shapes:
        section.details += ["", f"{shape.title}, {top} connections:", "", *SHAPE_TABLE]
        for figures in shape.figures:
            section.details.append(
                f"| {figures.label} | {figures.requests(top):,} | {fmt_rate(figures.rate(top))} "
                f"| {fmt_ratio(ratio(figures.rate(top), shape.pair[1].rate(top)))} "
                f"| {fmt_us(figures.p50(top))} | {fmt_us(figures.p99(top))} "
                f"| {fmt_ratio(ratio(figures.p99(top), shape.pair[1].p99(top)))} "
                f"| {fmt_us(_cpu_per_call(figures, top))} |"
            )
    cores = ", ".join(
        f"{figures.server.name}{'' if figures.load is None else f' ({key})'}: "
        + ", ".join(f"{name} {used:.2f}" for name, used in figures.cpu.items())
        for key, figures in [
            *(("", f) for f in (*measured, bare)),
            *((shape.key, shape.figures[0]) for shape in shapes),
        ]
    )
    section.details += ["", f"CPU cores used at {top} connections (CPU s ÷ wall s, per process): {cores}."]
    return section


def _shape_targets(
    key: str, shape: str, ours: Figures, sdk: Figures, top: int, ratio_of: str, limit: float
) -> list[Target]:
    """The targets of one client shape at ``top`` connections: requests/s at least ``limit`` times the
    SDK-only server's (issue 15, targets 1 and 2), and its tail (target 3): a p99 at most
    ``TAIL_VS_BASELINE`` times the SDK-only server's and at most ``TAIL_VS_P50`` times our own p50."""
    rate_ratio = ratio(ours.rate(top), sdk.rate(top))
    p99_ratio = ratio(ours.p99(top), sdk.p99(top))
    tail = ratio(ours.p99(top), ours.p50(top))
    return [
        Target(
            key=f"{key}-rate",
            what=f"requests/s at {top} connections{shape}",
            target=f"≥ {limit:g}× the SDK-only server",
            limit=limit,
            better="higher",
            measured=rate_ratio,
            ratio=rate_ratio,
            ratio_of=ratio_of,
            absolute=f"{fmt_rate(ours.rate(top))} vs {fmt_rate(sdk.rate(top))}",
        ),
        Target(
            key=f"{key}-p99",
            what=f"p99 latency at {top} connections{shape}",
            target=f"≤ {TAIL_VS_BASELINE:g}× the SDK-only server's p99",
            limit=TAIL_VS_BASELINE,
            better="lower",
            measured=p99_ratio,
            ratio=p99_ratio,
            ratio_of=ratio_of,
            absolute=f"{fmt_us(ours.p99(top))} vs {fmt_us(sdk.p99(top))}",
        ),
        Target(
            key=f"{key}-tail",
            what=f"tail at {top} connections{shape}: p99 ÷ p50",
            target=f"≤ {TAIL_VS_P50:g}× its own p50",
            limit=TAIL_VS_P50,
            better="lower",
            measured=tail,
            ratio=tail,
            ratio_of="÷ the supervisor's p50, same run",
            absolute=f"p99 {fmt_us(ours.p99(top))}, p50 {fmt_us(ours.p50(top))}",
        ),
    ]


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
