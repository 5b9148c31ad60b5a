"""6. Task queue: submissions/s and no-op task completions/s, with durability on (WAL, synchronous=FULL).

Submissions: concurrent clients call ``task_submit`` over HTTP (the stateless 2026-07-28 era) for a fixed
time while the queue is paused, so that only submitting is measured; every submission is committed before
it is answered. Completions: the queue is resumed and the time until every submitted no-op task has
completed is taken from ``queue_stats``. The baseline is a plain ``tools/call`` of the same no-op tool at
the same concurrency, in the same run: a submission is a tool call that also writes to the database.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from benchmarks._common import Section, Suite, Target, call_tool, fmt_rate, start_supervisor, stop_server

NAME = "taskqueue"
TITLE = "Task queue"
CONCURRENCY = 16
SUBMIT_SECONDS = 3.0
COMPLETE_DEADLINE = 60.0


async def _rate(url: str, tool: str, arguments: dict[str, object], seconds: float) -> tuple[int, float]:
    """Calls of ``tool`` from ``CONCURRENCY`` clients for ``seconds``: (successful calls, elapsed)."""
    done = 0
    stop_at = time.monotonic() + seconds

    async def client_loop() -> None:
        nonlocal done
        async with httpx.AsyncClient(timeout=30) as client:
            while time.monotonic() < stop_at:
                ok, text = await call_tool(client, url, tool, arguments)
                if not ok:
                    raise RuntimeError(f"{tool} failed: {text[:200]}")
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
    return done, time.monotonic() - started


async def _stats(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=30) as client:
        ok, text = await call_tool(client, url, "queue_stats", {})
    if not ok:
        raise RuntimeError(f"queue_stats failed: {text[:200]}")
    counts: dict[str, int] = json.loads(text)["counts"]
    return counts


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    seconds = suite.pick(SUBMIT_SECONDS, SUBMIT_SECONDS / 3)
    server = await start_supervisor(suite, "taskqueue", task_queue=True)
    try:
        calls, call_elapsed = await _rate(server.url, "noop_asyncio", {}, seconds)
        call_rate = calls / call_elapsed
        async with httpx.AsyncClient(timeout=30) as client:
            ok, text = await call_tool(client, server.url, "queue_pause", {"reason": "benchmark"})
            if not ok:
                raise RuntimeError(f"queue_pause failed: {text[:200]}")
        submit: dict[str, object] = {"task_type": "noop_asyncio", "payload": {}}
        submitted, submit_elapsed = await _rate(server.url, "task_submit", submit, seconds)
        submit_rate = submitted / submit_elapsed
        before = (await _stats(server.url)).get("completed", 0)
        async with httpx.AsyncClient(timeout=30) as client:
            await call_tool(client, server.url, "queue_resume", {})
        started = time.monotonic()
        while True:
            completed = (await _stats(server.url)).get("completed", 0) - before
            if completed >= submitted or time.monotonic() - started > COMPLETE_DEADLINE:
                break
            await asyncio.sleep(0.05)
        complete_elapsed = time.monotonic() - started
        complete_rate = completed / complete_elapsed
    finally:
        await stop_server(suite, server)
    for key, what, limit, rate, detail in (
        (
            "submit",
            "task submissions/s",
            2000.0,
            submit_rate,
            f"{submitted:,} submissions in {submit_elapsed:.1f} s",
        ),
        (
            "complete",
            "no-op task completions/s",
            500.0,
            complete_rate,
            f"{completed:,} completions in {complete_elapsed:.1f} s",
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
    section.details.append(
        f"{CONCURRENCY} HTTP clients; plain no-op calls {calls:,} in {call_elapsed:.1f} s; submissions with the "
        f"queue paused, then completions after queue_resume until every submitted task completed."
    )
    return section
