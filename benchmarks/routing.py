"""7. Routing: ``shared.detect_runtime`` cached vs uncached, per call, in proportion to one hop.

Measured in this process, on a private ``ToolMetadataRegistry`` so the process-wide one is not touched,
for the three ways a runtime gets decided: explicit metadata in the registry (what ``@tool_metadata``
gives), the module-name pattern of a function without metadata, and the worst case — an unknown name that
falls through every rule to the default. Each figure is the median of ``ROUNDS`` batch means of ``BATCH``
calls; ``use_cache=False`` for the uncached ones, ``use_cache=True`` after one warm call for the cached ones.

For proportion: the hop p50 of this run (``benchmarks.hop``), and the dictionary lookup
(``Catalog.pool_of.get``) the router actually does per call — ``detect_runtime`` runs once per tool when a
worker loads its tools (``shared/schema.py``), not per call.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable

from benchmarks import hop
from benchmarks.lib.hop_paths import Budget
from benchmarks.lib.results import ContextRow, Section
from benchmarks.lib.stats import fmt_ratio, fmt_us, median, ratio
from benchmarks.lib.suite import Suite
from shared.detection import clear_cache, detect_runtime
from shared.metadata import ToolMetadata, ToolMetadataRegistry

NAME = "routing"
TITLE = "Routing (shared.detect_runtime, cached vs uncached)"
BATCH = 20_000
ROUNDS = 7
SMALL_HOP = Budget(calls=500, pipelined=100, rounds=1, phase_seconds=1, warmup=100)
"""The hop measured here when this run has no hop benchmark to take it from (``--only routing``)."""


def _per_call_ns(fn: Callable[[], object], batch: int, rounds: int) -> float:
    for _ in range(1000):
        fn()
    means: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        means.append((time.perf_counter_ns() - start) / batch)
    return median(means)


async def _hop_p50_us(suite: Suite) -> tuple[float, str]:
    """The hop p50 of this run's hop benchmark, or a small one measured here (``--only routing``)."""
    section = suite.sections.get("hop")
    if section is not None and section.error is None and "p50_asyncio_us" in section.data:
        return float(section.data["p50_asyncio_us"]), "hop benchmark of this run"
    figures = await hop.collect(suite.tmp, suite.children, SMALL_HOP)
    probe = next(p for p in figures.probes if p.key == "hop-asyncio")
    return probe.latency().p50, "small hop measured by this benchmark"


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    batch = suite.pick(BATCH, BATCH // 4)
    registry = ToolMetadataRegistry()

    async def bench_registered() -> str:
        return "ok"

    registry.register(ToolMetadata(name="bench_registered", runtime="trio"), bench_registered)

    def by_module() -> str:
        return "ok"

    by_module.__module__ = "bench.trio_tools"  # the module-name pattern decides
    cases = [
        ("explicit metadata in the registry", "bench_registered", None),
        ("module-name pattern (no metadata)", "bench_by_module", by_module),
        ("unknown name: every rule, then the default", "bench_unknown_tool_name", None),
    ]
    router_map = {f"tool_{i}": "asyncio" for i in range(50)}
    lookup_ns = _per_call_ns(lambda: router_map.get("tool_25"), batch, ROUNDS)
    hop_us, hop_source = await _hop_p50_us(suite)
    hop_ns = hop_us * 1000
    rows: list[tuple[str, float, float]] = []
    try:
        for label, name, func in cases:
            uncached = _per_call_ns(
                functools.partial(detect_runtime, name, func, registry=registry, use_cache=False),
                batch,
                ROUNDS,
            )
            clear_cache()
            detect_runtime(name, func, registry=registry)
            cached = _per_call_ns(
                functools.partial(detect_runtime, name, func, registry=registry), batch, ROUNDS
            )
            rows.append((label, uncached, cached))
    finally:
        clear_cache()
    worst_uncached = max(row[1] for row in rows)
    worst_cached = max(row[2] for row in rows)
    section.context += [
        ContextRow(
            "detect_runtime uncached ÷ cached (worst case: unknown name)",
            ratio(rows[-1][1], rows[-1][2]),
            "÷ cached",
            f"{rows[-1][1]:,.0f} ns vs {rows[-1][2]:,.0f} ns per call",
        ),
        ContextRow(
            "detect_runtime uncached, worst case, in proportion to one hop",
            ratio(worst_uncached, hop_ns),
            "÷ hop p50 (asyncio)",
            f"{worst_uncached:,.0f} ns vs {fmt_us(hop_us)}",
        ),
        ContextRow(
            "detect_runtime cached, in proportion to one hop",
            ratio(worst_cached, hop_ns),
            "÷ hop p50 (asyncio)",
            f"{worst_cached:,.0f} ns vs {fmt_us(hop_us)}",
        ),
    ]
    section.details += [
        (
            f"Median of {ROUNDS} batch means of {batch:,} calls each, in the benchmark process, on a private "
            f"registry. Hop p50 for proportion: {fmt_us(hop_us)} ({hop_source})."
        ),
        "",
        "| how the runtime is decided | uncached ns/call | cached ns/call | uncached ÷ cached | uncached ÷ hop p50 | cached ÷ hop p50 |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for label, uncached, cached in rows:
        section.details.append(
            f"| {label} | {uncached:,.0f} | {cached:,.0f} | {fmt_ratio(ratio(uncached, cached))} "
            f"| {ratio(uncached, hop_ns) or math.nan:.3%} | {ratio(cached, hop_ns) or math.nan:.3%} |"
        )
    section.details.append(
        f"| for comparison: the router's per-call lookup (`dict.get`) | {lookup_ns:,.0f} | — | — "
        f"| {ratio(lookup_ns, hop_ns) or math.nan:.3%} | — |"
    )
    section.data.update(
        uncached_ns=worst_uncached, cached_ns=worst_cached, lookup_ns=lookup_ns, hop_ns=hop_ns
    )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
