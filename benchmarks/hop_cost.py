"""1. Hop cost: router → worker → router for a no-op tool, both runtimes.

``benchmarks.hop`` measured with a smaller budget (``hop.SUITE_BUDGET``): a real ``Router`` in this process
and real worker processes, against the two floors of the same run — an in-process ``await`` and a bare
pyzmq ROUTER/DEALER echo — plus the decomposition of the hop (router only, worker only). See
``benchmarks/hop.py`` for everything it does; ``python -m benchmarks.hop`` runs it alone with its own
(larger) budget.
"""

from __future__ import annotations

import sys

from benchmarks import hop
from benchmarks.lib.results import Section, Target
from benchmarks.lib.stats import fmt_ratio, fmt_us, ratio
from benchmarks.lib.suite import Suite

NAME = "hop"
TITLE = "Hop cost (router → worker → router, no-op tool)"


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    budget = hop.SUITE_BUDGET[suite.quick]
    figures = await hop.collect(suite.tmp, suite.children, budget)
    probes = {probe.key: probe for probe in figures.probes}
    echo = probes[hop.BASELINE].latency()
    in_process = figures.in_process
    assert in_process is not None
    for runtime in ("asyncio", "trio"):
        latency = probes[f"hop-{runtime}"].latency()
        for key, value in (("p50", latency.p50), ("p99", latency.p99)):
            limit = hop.TARGET_RATIOS[key]
            absolute = hop.TARGETS_US[key]
            section.targets.append(
                Target(
                    key=f"hop-{runtime}-{key}",
                    what=f"hop {key}, {runtime} worker",
                    target=f"≤ {absolute:g} µs with a {hop.ECHO_WHEN_SET_US:g} µs echo: ≤ {limit:g}× the echo's p50",
                    limit=limit,
                    better="lower",
                    measured=ratio(value, echo.p50),
                    ratio=ratio(value, echo.p50),
                    ratio_of="÷ bare pyzmq echo p50",
                    absolute=(
                        f"{fmt_us(value)} ({'≤' if value <= absolute else '>'} {absolute:g} µs; echo p50 "
                        f"{fmt_us(echo.p50)}, p99 {fmt_us(echo.p99)}; in-process await "
                        f"{fmt_us(getattr(in_process, key))})"
                    ),
                )
            )
        section.data[f"p50_{runtime}_us"] = latency.p50
    section.data["echo_p50_us"] = echo.p50
    section.data["paths_p50_us"] = {probe.key: probe.latency().p50 for probe in figures.probes}
    section.details += [
        (
            f"A real `Router` in the benchmark process and real worker processes (pinned as the supervisor pins "
            f"them), `ipc://` in a private directory. Each path: {budget.warmup} warm-up round trips, then "
            f"{budget.rounds} interleaved rounds of up to {budget.calls} sequential round trips in all (p50/p99) and "
            f"{budget.pipelined} pipelined ones with {budget.concurrency} in flight (calls/s). The baseline is a bare "
            "ROUTER/DEALER echo on blocking pyzmq of the same frame; `python -m benchmarks.hop` runs the same "
            "measurement alone with a larger budget."
        ),
        "",
        "| path | n | p50 | p99 | p50 ÷ echo p50 | p99 ÷ echo p99 | calls/s (32 in flight) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    rows = [in_process] if in_process is not None else []
    for row in rows:
        section.details.append(
            f"| {row.name} | {row.count:,} | {fmt_us(row.p50)} | {fmt_us(row.p99)} "
            f"| {fmt_ratio(ratio(row.p50, echo.p50))} | {fmt_ratio(ratio(row.p99, echo.p99))} | — |"
        )
    for probe in figures.probes:
        latency, rate = probe.latency(), probe.throughput(budget.concurrency)
        section.details.append(
            f"| {latency.name} | {latency.count:,} | {fmt_us(latency.p50)} | {fmt_us(latency.p99)} "
            f"| {fmt_ratio(ratio(latency.p50, echo.p50))} | {fmt_ratio(ratio(latency.p99, echo.p99))} "
            f"| {rate.rate:,.0f} |"
        )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
