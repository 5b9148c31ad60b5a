"""8. Memory: resident memory (RSS) of the supervisor and of each worker, idle and after load.

Two parts, to keep the run short:

1. **Real processes over HTTP.** A supervisor (``--tools benchmarks.noop_tools``, default workers) and the
   SDK-only ``MCPServer`` (the baseline) each get a 1 s warm-up (``wrk``, both no-ops in turn), then their
   RSS is read (*idle*); then ``wrk -c32`` for ``http_seconds`` in two halves, the RSS read after each (a
   one-time step shows in the first half only, a leak in both). The supervisor's
   growth is over the calls it served in that window (fewer than 100k: HTTP through one Python front is the
   slow part), said so in the table.
2. **100k calls per worker, through the router directly**, as ``benchmarks.hop`` drives them: a real
   ``Router`` in the benchmark process and real worker processes; 2,000 warm-up calls per worker, RSS
   (*idle*), then ``calls`` no-op calls per worker with 32 in flight (both workers at once), RSS again. This
   process's own RSS before and after stands for the router's side.
3. **Handshake-era sessions.** A fresh supervisor gets ``sessions`` ``initialize`` POSTs (2025-11-25), each
   opening a session it keeps until ``session_idle_timeout``; its RSS before and after, over the count, is
   the memory one session costs (what ``max_sessions`` bounds).

RSS from ``psutil`` (``/proc/<pid>/statm``), in MB of 10⁶ bytes (the unit of the targets).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import httpx

from benchmarks.lib.hop_paths import hop_probes
from benchmarks.lib.hop_peers import hop_settings
from benchmarks.lib.machine import rss_mb
from benchmarks.lib.results import ContextRow, Section, Target
from benchmarks.lib.servers import servers, start_sdk_server, start_supervisor
from benchmarks.lib.stats import fmt_ratio, ratio
from benchmarks.lib.suite import Suite, run_to_end
from benchmarks.lib.wrk import run_wrk, warm_up

NAME = "memory"
TITLE = "Memory (RSS idle and after load)"
SUPERVISOR_LIMIT_MB = 80.0
WORKER_LIMIT_MB = 50.0
GROWTH_LIMIT = 5.0
CALLS = ("noop_asyncio", None), ("noop_trio", None)
CONCURRENCY = 32
"""Calls in flight per worker in part 2."""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


IMPORTS = {
    "supervisor": ("supervisor.app", "supervisor.cli"),
    "worker": ("asyncio_worker.worker", "trio_worker.worker", "benchmarks.noop_tools"),
    "sdk": ("benchmarks.sdk_server",),
}
"""What each kind of process imports before it serves anything (to tell imports from state)."""


async def _import_rss(suite: Suite) -> dict[str, float]:
    """RSS (MB) of a fresh interpreter that only imports what each kind of process imports."""
    sizes: dict[str, float] = {}
    for name, imports in IMPORTS.items():
        log_path = suite.tmp / f"imports-{name}.log"
        argv = [sys.executable, "-m", "benchmarks.rss_probe", *imports]
        await run_to_end(suite, f"imports-{name}", argv, log_path, 30)
        line = next((x for x in log_path.read_text().splitlines() if x.startswith("RSS ")), "RSS nan")
        sizes[name] = float(line.split()[1])
    return sizes


def _growth(before: float, after: float) -> float:
    return (after - before) / before * 100 if before else float("nan")


async def _http_part(suite: Suite, seconds: int) -> dict[str, tuple[float, float, float, int]]:
    """name → (idle MB, MB after the first half of the load, MB after all of it, calls served)."""
    figures: dict[str, tuple[float, float, float, int]] = {}
    async with servers(suite) as started:
        supervisor = await start_supervisor(suite, "memory-supervisor", tools=("benchmarks.noop_tools",))
        started.append(supervisor)
        sdk = await start_sdk_server(suite, "memory-mcpserver", "mcpserver")
        started.append(sdk)
        for server in (supervisor, sdk):
            await warm_up(suite, server, CALLS, 8)
        await asyncio.sleep(0.5)
        pids = {"supervisor": supervisor.pid, "sdk": sdk.pid}
        pids |= {
            f"http-{worker_id.split('-')[0]}": pid
            for worker_id, pid in supervisor.workers.items()
            if "-spare-" not in worker_id  # a spare is idle: the serving worker's growth is measured
        }
        readings = [{name: rss_mb(pid) for name, pid in pids.items()}]
        served = {"supervisor": 0, "sdk": 0}
        for _ in range(2):  # two halves: a one-time step shows in the first, a leak in both
            for name, server in (("supervisor", supervisor), ("sdk", sdk)):
                served[name] += (await run_wrk(suite, server, CALLS, 32, max(1, seconds // 2))).requests
            await asyncio.sleep(0.5)
            readings.append({name: rss_mb(pid) for name, pid in pids.items()})
        for name in pids:
            calls = served.get(name, served["supervisor"] // 2)
            figures[name] = (readings[0][name], readings[1][name], readings[2][name], calls)
    return figures


async def _router_part(suite: Suite, calls: int) -> dict[str, tuple[float, float, int]]:
    """worker runtime → (idle MB, after MB, calls), plus ``router`` for this process."""
    figures: dict[str, tuple[float, float, int]] = {}
    async with hop_probes(suite.tmp, suite.children, hop_settings(), CONCURRENCY) as (probes, _startup):
        for probe in probes:
            await probe.pipelined(2000, 30)
        await asyncio.sleep(0.3)
        me = os.getpid()
        idle = {probe.key: rss_mb(probe.peer) for probe in probes} | {"router": rss_mb(me)}
        done = await asyncio.gather(*(probe.pipelined(calls, 60) for probe in probes))
        await asyncio.sleep(0.3)
        for probe, (count, _seconds) in zip(probes, done, strict=True):
            figures[probe.key.removeprefix("hop-")] = (idle[probe.key], rss_mb(probe.peer), count)
        figures["router"] = (idle["router"], rss_mb(me), sum(count for count, _ in done))
    return figures


async def _session_part(suite: Suite, sessions: int) -> tuple[float, float, int]:
    """(MB before, MB after, sessions opened) of a supervisor given ``sessions`` handshake-era sessions."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    async with servers(suite) as started:
        supervisor = await start_supervisor(
            suite, "memory-sessions", "--max-sessions", str(sessions + 10), tools=("benchmarks.noop_tools",)
        )
        started.append(supervisor)
        async with httpx.AsyncClient(timeout=30) as client:
            await client.post(supervisor.url, json=INITIALIZE, headers=headers)  # the first one's imports
            await asyncio.sleep(0.5)
            before = rss_mb(supervisor.pid)
            opened = 0
            for _ in range(sessions):
                response = await client.post(supervisor.url, json=INITIALIZE, headers=headers)
                opened += response.status_code == 200
            await asyncio.sleep(0.5)
            return before, rss_mb(supervisor.pid), opened


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    http_seconds = suite.pick(6, 3)
    calls = suite.pick(100_000, 20_000)
    started = time.monotonic()
    imports = await _import_rss(suite)
    http = await _http_part(suite, http_seconds)
    direct = await _router_part(suite, calls)
    session_before, session_after, sessions = await _session_part(suite, suite.pick(400, 200))
    sdk_idle = http["sdk"][0]
    supervisor_idle, supervisor_half, supervisor_after, supervisor_calls = http["supervisor"]
    idle = [("supervisor", "supervisor", supervisor_idle, SUPERVISOR_LIMIT_MB)]  # key, what, MB, limit
    idle += [(rt, f"{rt} worker", http[f"http-{rt}"][0], WORKER_LIMIT_MB) for rt in ("asyncio", "trio")]
    for key, what, idle_mb, limit in idle:
        section.targets.append(
            Target(
                key=f"memory-{key}-idle",
                what=f"{what} RSS, idle",
                target=f"≤ {limit:g} MB",
                limit=limit,
                better="lower",
                measured=idle_mb,
                ratio=ratio(idle_mb, sdk_idle),
                ratio_of="÷ SDK-only `MCPServer` RSS, idle",
                absolute=f"{idle_mb:.1f} MB vs {sdk_idle:.1f} MB",
            )
        )
    growths: list[tuple[str, str, float, float, str]] = []  # key, what, MB before, MB after, note
    for runtime in ("asyncio", "trio"):
        before, after, count = direct[runtime]
        what = f"{runtime} worker RSS growth over {count:,} calls"
        growths.append((runtime, what, before, after, "through the router directly"))
    what = f"supervisor RSS growth over {supervisor_calls:,} HTTP calls"
    note = f"{supervisor_calls:,} calls over HTTP, not 100k"
    growths.append(("supervisor", what, supervisor_idle, supervisor_after, note))
    for key, what, before, after, note in growths:
        section.targets.append(
            Target(
                key=f"memory-{key}-growth",
                what=what,
                target=f"≤ {GROWTH_LIMIT:g}% over 100k calls",
                limit=GROWTH_LIMIT,
                better="lower",
                measured=_growth(before, after),
                ratio=ratio(after, before),
                ratio_of="÷ its idle RSS",
                absolute=f"{_growth(before, after):+.1f}%: {before:.1f} → {after:.1f} MB",
                note=note,
            )
        )
    sdk_before, _sdk_half, sdk_after, sdk_calls = http["sdk"]
    router_before, router_after, router_calls = direct["router"]
    section.context += [
        ContextRow(
            f"SDK-only `MCPServer` RSS growth over {sdk_calls:,} HTTP calls",
            ratio(sdk_after, sdk_before),
            "÷ its idle RSS",
            f"{_growth(sdk_before, sdk_after):+.1f}%: {sdk_before:.1f} → {sdk_after:.1f} MB",
        ),
        ContextRow(
            "supervisor RSS growth over the second half of that HTTP load only",
            ratio(supervisor_after, supervisor_half),
            "÷ its RSS after the first half",
            f"{_growth(supervisor_half, supervisor_after):+.1f}%: {supervisor_half:.1f} → {supervisor_after:.1f} MB",
        ),
        ContextRow(
            f"router side (the benchmark process) RSS growth over {router_calls:,} calls",
            ratio(router_after, router_before),
            "÷ its idle RSS",
            f"{_growth(router_before, router_after):+.1f}%: {router_before:.1f} → {router_after:.1f} MB",
        ),
    ]
    per_session = (session_after - session_before) * 1e6 / max(sessions, 1)
    section.context.append(
        ContextRow(
            f"supervisor memory per handshake-era session, over {sessions:,} open sessions",
            None,
            "RSS delta ÷ sessions",
            f"{per_session / 1e3:.1f} kB each: {session_before:.1f} → {session_after:.1f} MB",
        )
    )
    section.details += [
        (
            "Imports alone (a fresh interpreter that only imports the modules, then reads its RSS): "
            + ", ".join(f"{name} {mb:.1f} MB" for name, mb in imports.items())
            + "."
        ),
        "",
        (
            f"Part 1: real processes over HTTP, idle = after a 1 s warm-up, then `wrk -c32` for {http_seconds} s in two halves "
            f"(no-ops of both runtimes in turn). Part 2: {calls:,} no-op calls per worker through a `Router` in the "
            "benchmark process, 32 in flight, after 2,000 warm-up calls each. RSS in MB of 10⁶ bytes (psutil)."
        ),
        "",
        "| process | idle MB | after half the load | after MB | growth | calls |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    labels = {
        "supervisor": "supervisor (front + router), over HTTP",
        "http-asyncio": "asyncio worker of that supervisor",
        "http-trio": "Trio worker of that supervisor",
        "sdk": "SDK-only `MCPServer` (**baseline**), over HTTP",
        "asyncio": "asyncio worker, through the router directly",
        "trio": "Trio worker, through the router directly",
        "router": "benchmark process (router side), part 2",
    }
    for key, label in labels.items():
        if key in http:
            before, half, after, count = http[key]
            middle = f"{half:.1f}"
        else:
            before, after, count = direct[key]
            middle = "—"
        section.details.append(
            f"| {label} | {before:.1f} | {middle} | {after:.1f} | {_growth(before, after):+.1f}% | {count:,} |"
        )
    section.details.append(
        f"\nGrowth ratios: {', '.join(f'{t.what} {fmt_ratio(t.ratio)}' for t in section.targets if 'growth' in t.key)}."
    )
    section.data.update(
        supervisor_idle=supervisor_idle,
        sdk_idle=sdk_idle,
        worker_idle={runtime: http[f"http-{runtime}"][0] for runtime in ("asyncio", "trio")},
        growth={runtime: _growth(*direct[runtime][:2]) for runtime in ("asyncio", "trio")},
        calls=calls,
        supervisor_growth=_growth(supervisor_idle, supervisor_after),
        supervisor_calls=supervisor_calls,
        sdk_growth=_growth(sdk_before, sdk_after),
        imports=imports,
        session_bytes=per_session,
        sessions=sessions,
    )
    section.data["elapsed"] = time.monotonic() - started
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
