"""4. Isolation: the p99 of one runtime while a tool blocks the other runtime's event loop for 1 s.

The blocking tool is ``block_<runtime>`` (``benchmarks.bench_tools``): ``time.sleep(1)`` inside an
``async def``, which blocks its worker's event loop; a client in this process calls it back to back (one
call at a time), so the loop stays blocked for the whole window. Meanwhile ``wrk -t1 -c1`` calls the no-op
of the *other* runtime and its p99 is compared with the p99 of the same calls with nothing blocked (the
baseline, measured in the same run just before). Both directions are measured on the supervisor (default
workers: one asyncio, one Trio). The SDK-only ``MCPServer`` gets the same treatment: it has one event loop,
so its "other runtime" is the same loop and every call waits for the block to end.

``rounds`` rounds of (idle window, blocked window) per case; p99 is the median of the rounds' wrk p99.
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx

from benchmarks.lib.mcp_client import call_tool
from benchmarks.lib.results import BenchmarkError, ContextRow, Section, Target
from benchmarks.lib.servers import HttpServer, servers, start_sdk_server, start_supervisor
from benchmarks.lib.stats import fmt_ratio, fmt_us, median, ratio
from benchmarks.lib.suite import Suite
from benchmarks.lib.wrk import WrkResult, run_wrk, warm_up

NAME = "isolation"
TITLE = "Isolation (one runtime blocked for 1 s at a time)"
BLOCK_SECONDS = 1.0
TARGET = 2.0


async def _block_back_to_back(
    server: HttpServer, tool: str, stop: asyncio.Event, blocks: list[float]
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            start = time.perf_counter()
            ok, text = await call_tool(client, server.url, tool, {"seconds": BLOCK_SECONDS})
            if not ok:
                raise BenchmarkError(f"{server.name}: {tool} failed: {text}")
            blocks.append(time.perf_counter() - start)


async def _case(
    suite: Suite, server: HttpServer, blocker: str, probe: str, rounds: int, seconds: int
) -> tuple[list[WrkResult], list[WrkResult], list[float]]:
    await warm_up(suite, server, [(probe, None)], 1)
    idle: list[WrkResult] = []
    blocked: list[WrkResult] = []
    blocks: list[float] = []
    for _ in range(rounds):
        idle.append(await run_wrk(suite, server, [(probe, None)], 1, seconds))
        stop = asyncio.Event()
        task = asyncio.create_task(_block_back_to_back(server, blocker, stop, blocks))
        try:
            await asyncio.sleep(0.2)  # the first block is under way
            blocked.append(await run_wrk(suite, server, [(probe, None)], 1, seconds))
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, BLOCK_SECONDS * 3 + 10)
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
    if not blocks:
        raise BenchmarkError(f"{server.name}: no {blocker} call finished")
    return idle, blocked, blocks


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    rounds = suite.pick(2, 1)
    seconds = suite.pick(3, 2)
    async with servers(suite) as started:
        supervisor = await start_supervisor(suite, "isolation-supervisor")
        started.append(supervisor)
        sdk = await start_sdk_server(suite, "isolation-mcpserver", "mcpserver")
        started.append(sdk)
        cases = [
            (supervisor, "asyncio", "trio"),
            (supervisor, "trio", "asyncio"),
            (sdk, "asyncio", "trio"),
        ]
        outcomes = []
        for server, blocked_runtime, probe_runtime in cases:
            idle, blocked, blocks = await _case(
                suite, server, f"block_{blocked_runtime}", f"noop_{probe_runtime}", rounds, seconds
            )
            outcomes.append((server, blocked_runtime, probe_runtime, idle, blocked, blocks))
    section.details += [
        (
            f"`wrk -t1 -c1` on the no-op of one runtime for {seconds} s with nothing blocked, then {seconds} s "
            f"while a client calls `block_<other runtime>` (`time.sleep({BLOCK_SECONDS:g})` in an async tool) back "
            f"to back; {rounds} round(s) per case, p99 = median of the rounds' p99."
        ),
        "",
        "| server | blocked | calls to | idle p50 | idle p99 | blocked p50 | blocked p99 | p99 ÷ idle p99 | blocked max | calls while blocked | blocks |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for server, blocked_runtime, probe_runtime, idle, blocked, blocks in outcomes:
        idle_p99 = median([r.p99_us for r in idle])
        blocked_p99 = median([r.p99_us for r in blocked])
        value = ratio(blocked_p99, idle_p99)
        is_supervisor = server.kind == "supervisor"
        probe_label = f"noop_{probe_runtime}" + ("" if is_supervisor else " (same loop)")
        section.details.append(
            f"| {'supervisor' if is_supervisor else 'SDK-only `MCPServer` (one loop)'} | {blocked_runtime} "
            f"| {probe_label} | {fmt_us(median([r.p50_us for r in idle]))} | {fmt_us(idle_p99)} "
            f"| {fmt_us(median([r.p50_us for r in blocked]))} | {fmt_us(blocked_p99)} | {fmt_ratio(value)} "
            f"| {fmt_us(max(r.max_us for r in blocked))} | {sum(r.requests for r in blocked):,} | {len(blocks)} |"
        )
        absolute = f"{fmt_us(blocked_p99)} vs {fmt_us(idle_p99)} idle"
        if is_supervisor:
            section.targets.append(
                Target(
                    key=f"isolation-{probe_runtime}",
                    what=f"p99 of {probe_runtime} calls while the {blocked_runtime} worker is blocked",
                    target=f"≤ {TARGET:g}× its idle p99",
                    limit=TARGET,
                    better="lower",
                    measured=value,
                    ratio=value,
                    ratio_of=f"÷ idle {probe_runtime} p99",
                    absolute=absolute,
                )
            )
        else:
            section.context.append(
                ContextRow(
                    "single-process SDK server: p99 of a no-op while a tool blocks its loop",
                    value,
                    "÷ its idle p99",
                    absolute + " (everything stalls)",
                )
            )
    section.data["ratios"] = [t.ratio for t in section.targets]
    section.data["baseline"] = [row.ratio for row in section.context]
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
