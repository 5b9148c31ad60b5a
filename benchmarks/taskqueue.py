"""6. Task queue: submissions/s and no-op task completions/s, with durability on (WAL, synchronous=FULL).

Load: ``wrk -t1`` with the generated Lua script of ``benchmarks.lib.wrk`` POSTing 2026-07-28 ``tools/call``
requests; the script counts every answer that is not HTTP 200 with ``"isError":false`` and a run with any such
answer is refused, so every submission counted was acknowledged as successful (committed and synced:
``task_submit`` answers only after its transaction is on disk). One C process generates the load: the
earlier generator (16 httpx clients in this Python process) topped out near 200 calls/s, far below the
server, and measured itself.

Baseline, in the same run and at the same concurrency: a plain ``tools/call`` of the same no-op tool
(``noop_asyncio``), so a submission is compared with a tool call that does not touch the database.

Submissions: ``task_submit`` of that tool for a fixed time while the queue is paused, so that only
submitting is measured. Completions: the queue is resumed and the time until every queued task (the
number ``queue_stats`` reports, which also counts submissions wrk had in flight when it stopped) has
completed is taken from ``queue_stats``. The CPU each process used (front, worker processes, the
``trio-queue`` worker, wrk) is shown per phase, to tell which one limits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from benchmarks.lib.machine import reaped_children_cpu_seconds
from benchmarks.lib.mcp_client import call_tool
from benchmarks.lib.results import Section, Target
from benchmarks.lib.servers import CoreMeter, HttpServer, start_supervisor, stop_server
from benchmarks.lib.stats import fmt_rate, fmt_us
from benchmarks.lib.suite import Suite
from benchmarks.lib.wrk import WrkResult, run_wrk, warm_up

NAME = "taskqueue"
TITLE = "Task queue"
TOOL = "noop_asyncio"
CONCURRENCY = 32
SUBMIT_SECONDS = 3
COMPLETE_DEADLINE = 60.0


async def _with_cpu(server: HttpServer, work: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, float]]:
    """Run ``work`` and return its result with the cores each process used meanwhile (CPU s ÷ wall s)."""
    meter = CoreMeter(server)
    children = reaped_children_cpu_seconds()
    started = time.monotonic()
    result = await work()
    elapsed = time.monotonic() - started
    used = meter.cores(elapsed)
    used["wrk"] = (reaped_children_cpu_seconds() - children) / elapsed
    return result, used


async def _call(url: str, tool: str, arguments: dict[str, Any]) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        ok, text = await call_tool(client, url, tool, arguments)
    if not ok:
        raise RuntimeError(f"{tool} failed: {text[:200]}")
    return text


async def _counts(url: str) -> dict[str, int]:
    counts: dict[str, int] = json.loads(await _call(url, "queue_stats", {}))["counts"]
    return counts


def _cores(used: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in used.items())


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    seconds = suite.pick(SUBMIT_SECONDS, 1)
    submit: dict[str, Any] = {"task_type": TOOL, "payload": {}}
    server = await start_supervisor(suite, "taskqueue", task_queue=True)
    try:
        await server.verify("task_submit", submit)
        await warm_up(suite, server, [(TOOL, None)], CONCURRENCY)
        plain: WrkResult
        plain, plain_cpu = await _with_cpu(
            server, lambda: run_wrk(suite, server, [(TOOL, None)], CONCURRENCY, seconds)
        )
        await _call(server.url, "queue_pause", {"reason": "benchmark"})
        submitted: WrkResult
        submitted, submit_cpu = await _with_cpu(
            server, lambda: run_wrk(suite, server, [("task_submit", submit)], CONCURRENCY, seconds)
        )
        counts = await _counts(server.url)
        queued, before = counts.get("queued", 0), counts.get("completed", 0)

        async def complete() -> tuple[int, float]:
            await _call(server.url, "queue_resume", {})
            started = time.monotonic()
            while True:
                done = (await _counts(server.url)).get("completed", 0) - before
                if done >= queued or time.monotonic() - started > COMPLETE_DEADLINE:
                    return done, time.monotonic() - started
                await asyncio.sleep(0.02)

        (completed, complete_elapsed), complete_cpu = await _with_cpu(server, complete)
    finally:
        await stop_server(suite, server)
    call_rate, submit_rate = plain.rate, submitted.rate
    complete_rate = completed / complete_elapsed
    for key, what, limit, rate, detail in (
        (
            "submit",
            "task submissions/s",
            2000.0,
            submit_rate,
            f"{submitted.requests:,} acknowledged submissions in {submitted.seconds:.1f} s",
        ),
        (
            "complete",
            "no-op task completions/s",
            500.0,
            complete_rate,
            f"{completed:,} of {queued:,} queued tasks completed in {complete_elapsed:.1f} s",
        ),
    ):
        section.targets.append(
            Target(
                key=f"taskqueue-{key}",
                what=what,
                target=f"≥ {limit:,.0f}/s",
                limit=limit,
                better="higher",
                measured=rate,
                ratio=rate / call_rate if call_rate else None,
                ratio_of="÷ plain tools/call of the same no-op tool",
                absolute=f"{fmt_rate(rate)} vs {fmt_rate(call_rate)} ({detail})",
            )
        )
    section.data["rates"] = {"call": call_rate, "submit": submit_rate, "complete": complete_rate}
    section.details += [
        (
            f'`wrk -t1 -c{CONCURRENCY}` (Lua script: any answer other than HTTP 200 with `"isError":false` '
            f"refuses the run), {seconds} s each after a 1 s warm-up: plain `tools/call` of `{TOOL}` "
            f"{plain.requests:,} calls ({fmt_rate(call_rate)}, p50 {fmt_us(plain.p50_us)}, p99 "
            f"{fmt_us(plain.p99_us)}); `task_submit` of `{TOOL}` with the queue paused "
            f"{submitted.requests:,} ({fmt_rate(submit_rate)}, p50 {fmt_us(submitted.p50_us)}, p99 "
            f"{fmt_us(submitted.p99_us)}); then `queue_resume` and `queue_stats` polled until all "
            f"{queued:,} queued tasks completed."
        ),
        "",
        f"CPU cores used (CPU s ÷ wall s, per process): plain calls: {_cores(plain_cpu)}; submissions: "
        f"{_cores(submit_cpu)}; completions: {_cores(complete_cpu)}.",
    ]
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
