"""3. CPU scaling: a CPU-bound tool on one worker per core versus the single-process server.

The tool is ``spin_asyncio`` (``benchmarks.bench_tools``): a fixed pure-Python loop (``spin_loop``) run in
the event loop thread, the same function body in every server. Servers, started together on loopback:

- the supervisor with ``--workers-asyncio 2 --workers-trio 0``: one worker per core of this 2-core machine
  (pinned as the supervisor pins them);
- for context, the supervisor with ``--workers-asyncio 1 --workers-trio 0`` (what the hop costs on a
  CPU-bound call, and how far two workers get from twice one), and with two workers but ``--no-pin`` (what
  pinning does on a machine other processes share);
- **the baseline**: the SDK-only ``MCPServer`` in one process running the same tool.

Load: ``wrk -t1 -c8`` (enough calls in flight to keep two workers busy), ``rounds`` interleaved rounds per
server after a 1 s warm-up; the figure is requests/s over all rounds.
"""

from __future__ import annotations

import sys
import time

from benchmarks.bench_tools import spin_loop
from benchmarks.lib.results import ContextRow, Section, Target
from benchmarks.lib.servers import CoreMeter, HttpServer, servers, start_sdk_server, start_supervisor
from benchmarks.lib.stats import fmt_rate, fmt_ratio, fmt_us, median, ratio
from benchmarks.lib.suite import Suite
from benchmarks.lib.timing import rotations
from benchmarks.lib.wrk import WrkResult, combined_rate, run_wrk, warm_up

NAME = "cpu"
TITLE = "CPU scaling (CPU-bound tool, one worker per core)"
TOOL = "spin_asyncio"
ITERATIONS = 200_000
CONNECTIONS = 8
TARGET = 1.8


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    rounds = suite.pick(2, 1)
    seconds = suite.pick(4, 3)
    arguments = {"iterations": ITERATIONS}
    calls = [(TOOL, arguments)]
    start = time.perf_counter()
    spin_loop(ITERATIONS)
    work_ms = (time.perf_counter() - start) * 1000
    async with servers(suite) as started:
        two = await start_supervisor(
            suite, "cpu-supervisor-2", "--workers-asyncio", "2", "--workers-trio", "0"
        )
        started.append(two)
        one = await start_supervisor(
            suite, "cpu-supervisor-1", "--workers-asyncio", "1", "--workers-trio", "0"
        )
        started.append(one)
        unpinned = await start_supervisor(
            suite, "cpu-supervisor-2-nopin", "--workers-asyncio", "2", "--workers-trio", "0", "--no-pin"
        )
        started.append(unpinned)
        sdk = await start_sdk_server(suite, "cpu-mcpserver", "mcpserver")
        started.append(sdk)
        measured: list[HttpServer] = [two, sdk, one, unpinned]
        runs: dict[str, list[WrkResult]] = {server.name: [] for server in measured}
        cores: dict[str, dict[str, list[float]]] = {server.name: {} for server in measured}
        for server in measured:
            await warm_up(suite, server, calls, CONNECTIONS)
        for order in rotations(measured, rounds):
            for server in order:
                meter = CoreMeter(server)
                result = await run_wrk(suite, server, calls, CONNECTIONS, seconds)
                runs[server.name].append(result)
                for name, used in meter.cores(result.seconds).items():
                    cores[server.name].setdefault(name, []).append(used)
    rate = {name: combined_rate(results) for name, results in runs.items()}
    scaling = ratio(rate[two.name], rate[sdk.name])
    section.targets.append(
        Target(
            key="cpu-scaling",
            what="CPU-bound tool, 2 workers on 2 cores: requests/s",
            target=f"≥ {TARGET:g}× the single-process server",
            limit=TARGET,
            better="higher",
            measured=scaling,
            ratio=scaling,
            ratio_of="÷ SDK-only `MCPServer`",
            absolute=f"{fmt_rate(rate[two.name])} vs {fmt_rate(rate[sdk.name])}",
        )
    )
    section.context += [
        ContextRow(
            "CPU-bound tool, 1 worker: requests/s",
            ratio(rate[one.name], rate[sdk.name]),
            "÷ SDK-only `MCPServer`",
            f"{fmt_rate(rate[one.name])} vs {fmt_rate(rate[sdk.name])}",
        ),
        ContextRow(
            "CPU-bound tool, 2 workers not pinned (`--no-pin`): requests/s",
            ratio(rate[unpinned.name], rate[sdk.name]),
            "÷ SDK-only `MCPServer`",
            f"{fmt_rate(rate[unpinned.name])} vs {fmt_rate(rate[sdk.name])}",
        ),
        ContextRow(
            "CPU-bound tool: 2 workers ÷ 1 worker (scaling of the workers alone)",
            ratio(rate[two.name], rate[one.name]),
            "÷ supervisor with 1 worker",
            f"{fmt_rate(rate[two.name])} vs {fmt_rate(rate[one.name])}",
        ),
    ]
    labels = {
        two.name: "**supervisor, 2 asyncio workers** (pinned, one per core)",
        one.name: "supervisor, 1 asyncio worker",
        unpinned.name: "supervisor, 2 asyncio workers, `--no-pin`",
        sdk.name: "SDK only: `MCPServer`, one process (**baseline**)",
    }
    section.details += [
        (
            f"Tool `{TOOL}`: `spin_loop({ITERATIONS:,})`, about {work_ms:.0f} ms of CPython in this process, "
            f"run in the event loop thread. `wrk -t1 -c{CONNECTIONS}`, {rounds} interleaved round(s) of "
            f"{seconds} s per server after a 1 s warm-up (every answer checked)."
        ),
        "",
        "| server | requests | req/s | ÷ baseline | p50 | p99 | cores used (CPU s ÷ wall s) |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for server in measured:
        results = runs[server.name]
        cores_used = ", ".join(f"{name} {median(values):.2f}" for name, values in cores[server.name].items())
        section.details.append(
            f"| {labels[server.name]} | {sum(r.requests for r in results):,} | {fmt_rate(rate[server.name])} "
            f"| {fmt_ratio(ratio(rate[server.name], rate[sdk.name]))} "
            f"| {fmt_us(median([r.p50_us for r in results]))} | {fmt_us(median([r.p99_us for r in results]))} "
            f"| {cores_used} |"
        )
    section.data.update(
        scaling=scaling,
        per_worker=ratio(rate[two.name], rate[one.name]),
        unpinned=ratio(rate[unpinned.name], rate[sdk.name]),
        cores={name: {k: median(v) for k, v in used.items()} for name, used in cores.items()},
        work_ms=work_ms,
    )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
