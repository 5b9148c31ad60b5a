"""6. Task queue: submissions/s and no-op task completions/s, with durability on (WAL, synchronous=FULL), on
SQLite and, in the same run, on PostgreSQL with one and with two supervisors sharing the database.

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
``trio-queue`` worker, wrk, and PostgreSQL's server with its backends) is shown per phase, to tell which
one limits.

PostgreSQL: a server of the run's own (Debian's binaries, ``initdb`` into the run's private directory,
``tests/pgserver.py``) with its durability left on (``fsync``, ``synchronous_commit``): an acknowledged
submission is in its WAL on disk, as SQLite's is. With two supervisors, each gets half the connections
(the same total concurrency), both run the queue, and the rates are their sums.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psutil

from benchmarks.lib.machine import cpu_seconds, reaped_children_cpu_seconds
from benchmarks.lib.mcp_client import call_tool
from benchmarks.lib.results import ContextRow, Section, Target
from benchmarks.lib.servers import CoreMeter, HttpServer, start_supervisor, stop_server
from benchmarks.lib.stats import fmt_rate, fmt_us
from benchmarks.lib.suite import Suite
from benchmarks.lib.wrk import WrkResult, run_wrk, warm_up
from tests.pgserver import PostgresServer  # the same real server the tests start

NAME = "taskqueue"
TITLE = "Task queue"
TOOL = "noop_asyncio"
CONCURRENCY = 32
SUBMIT_SECONDS = 3
COMPLETE_DEADLINE = 60.0


async def _with_cpu(
    servers: list[HttpServer], work: Callable[[], Awaitable[Any]], extra: Callable[[float], dict[str, float]]
) -> tuple[Any, dict[str, float]]:
    """Run ``work`` and return its result with the cores each process used meanwhile (CPU s ÷ wall s);
    ``extra(seconds)`` adds processes of the run's own (the database server)."""
    meters = [CoreMeter(server) for server in servers]
    children = reaped_children_cpu_seconds()
    started = time.monotonic()
    result = await work()
    elapsed = time.monotonic() - started
    used: dict[str, float] = {}
    for server, meter in zip(servers, meters, strict=True):
        prefix = f"{server.name}/" if len(servers) > 1 else ""
        used.update({f"{prefix}{name}": value for name, value in meter.cores(elapsed).items()})
    used["wrk"] = (reaped_children_cpu_seconds() - children) / elapsed
    used.update(extra(elapsed))
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


@dataclass
class Measured:
    """Submissions and completions through one or more supervisors on one database."""

    submitted: list[WrkResult]
    queued: int
    completed: int
    complete_seconds: float
    cpu: dict[str, dict[str, float]]

    @property
    def submit_rate(self) -> float:
        return sum(run.rate for run in self.submitted)

    @property
    def complete_rate(self) -> float:
        return self.completed / self.complete_seconds if self.complete_seconds else math.nan


async def _measure(
    suite: Suite, servers: list[HttpServer], seconds: int, extra: Callable[[float], dict[str, float]]
) -> Measured:
    """Pause, submit through every server at once for ``seconds``, resume and time the completions."""
    submit: dict[str, Any] = {"task_type": TOOL, "payload": {}}
    first = servers[0]
    await _call(first.url, "queue_pause", {"reason": "benchmark"})
    connections = CONCURRENCY // len(servers)

    async def submitting() -> list[WrkResult]:
        runs = [run_wrk(suite, s, [("task_submit", submit)], connections, seconds) for s in servers]
        return list(await asyncio.gather(*runs))

    submitted, submit_cpu = await _with_cpu(servers, submitting, extra)
    counts = await _counts(first.url)
    queued, before = counts.get("queued", 0), counts.get("completed", 0)

    async def complete() -> tuple[int, float]:
        await _call(first.url, "queue_resume", {})
        started = time.monotonic()
        while True:
            done = (await _counts(first.url)).get("completed", 0) - before
            if done >= queued or time.monotonic() - started > COMPLETE_DEADLINE:
                return done, time.monotonic() - started
            await asyncio.sleep(0.02)

    (completed, elapsed), complete_cpu = await _with_cpu(servers, complete, extra)
    return Measured(submitted, queued, completed, elapsed, {"submit": submit_cpu, "complete": complete_cpu})


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
            [server], lambda: run_wrk(suite, server, [(TOOL, None)], CONCURRENCY, seconds), _nothing
        )
        sqlite = await _measure(suite, [server], seconds, _nothing)
    finally:
        await stop_server(suite, server)
    postgres = await asyncio.to_thread(PostgresServer(durable=True).start)
    shared: dict[int, Measured] = {}
    try:
        for count in (1, 2):
            url = await asyncio.to_thread(postgres.database, f"bench{count}")
            servers: list[HttpServer] = []
            try:
                for n in range(count):
                    servers.append(
                        await start_supervisor(
                            suite, f"taskqueue-pg{count}-{n}", task_queue=True, task_db=url
                        )
                    )
                for one in servers:
                    await one.verify("task_submit", submit)
                shared[count] = await _measure(suite, servers, seconds, _postgres_cores(postgres.pid))
            finally:
                for one in servers:
                    await stop_server(suite, one)
    finally:
        await asyncio.to_thread(postgres.stop)
    call_rate = plain.rate
    _targets(section, sqlite, call_rate)
    for count, measured in shared.items():
        for what, rate, of in (
            ("submissions/s", measured.submit_rate, sqlite.submit_rate),
            ("no-op task completions/s", measured.complete_rate, sqlite.complete_rate),
        ):
            section.context.append(
                ContextRow(
                    what=f"task {what}, PostgreSQL, {count} supervisor{'s' if count > 1 else ''}",
                    ratio=rate / of if of else None,
                    ratio_of="÷ the same figure on SQLite, same run",
                    absolute=f"{fmt_rate(rate)} vs {fmt_rate(of)} ({measured.completed:,} of "
                    f"{measured.queued:,} queued tasks completed in {measured.complete_seconds:.1f} s)",
                )
            )
    section.data["rates"] = {
        "call": call_rate,
        "submit": sqlite.submit_rate,
        "complete": sqlite.complete_rate,
        **{f"pg{count}-submit": m.submit_rate for count, m in shared.items()},
        **{f"pg{count}-complete": m.complete_rate for count, m in shared.items()},
    }
    section.details += [
        (
            f'`wrk -t1 -c{CONCURRENCY}` (Lua script: any answer other than HTTP 200 with `"isError":false` '
            f"refuses the run), {seconds} s each after a 1 s warm-up: plain `tools/call` of `{TOOL}` "
            f"{plain.requests:,} calls ({fmt_rate(call_rate)}, p50 {fmt_us(plain.p50_us)}, p99 "
            f"{fmt_us(plain.p99_us)}); `task_submit` of `{TOOL}` with the queue paused "
            f"{_runs(sqlite.submitted)}; then `queue_resume` and `queue_stats` polled until all "
            f"{sqlite.queued:,} queued tasks completed."
        ),
        "",
        f"CPU cores used (CPU s ÷ wall s, per process): plain calls: {_cores(plain_cpu)}; submissions: "
        f"{_cores(sqlite.cpu['submit'])}; completions: {_cores(sqlite.cpu['complete'])}.",
    ]
    for count, measured in shared.items():
        section.details += [
            "",
            f"PostgreSQL, {count} supervisor(s), `wrk -c{CONCURRENCY // count}` against each: `task_submit` "
            f"{_runs(measured.submitted)}; completions of {measured.queued:,} queued tasks in "
            f"{measured.complete_seconds:.1f} s. CPU cores: submissions: {_cores(measured.cpu['submit'])}; "
            f"completions: {_cores(measured.cpu['complete'])}.",
        ]
    return section


def _targets(section: Section, sqlite: Measured, call_rate: float) -> None:
    """The issue's two targets, on SQLite (the embedded default)."""
    for key, what, limit, rate, detail in (
        (
            "submit",
            "task submissions/s",
            2000.0,
            sqlite.submit_rate,
            f"{sum(r.requests for r in sqlite.submitted):,} acknowledged submissions in "
            f"{max(r.seconds for r in sqlite.submitted):.1f} s",
        ),
        (
            "complete",
            "no-op task completions/s",
            500.0,
            sqlite.complete_rate,
            f"{sqlite.completed:,} of {sqlite.queued:,} queued tasks completed in {sqlite.complete_seconds:.1f} s",
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


def _runs(runs: list[WrkResult]) -> str:
    return "; ".join(
        f"{run.requests:,} ({fmt_rate(run.rate)}, p50 {fmt_us(run.p50_us)}, p99 {fmt_us(run.p99_us)})"
        for run in runs
    )


def _nothing(seconds: float) -> dict[str, float]:
    return {}


def _postgres_cores(pid: int) -> Callable[[float], dict[str, float]]:
    """A meter of the PostgreSQL server's cores (the postmaster and its backends) from now on."""

    def total() -> float:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return math.nan
        return sum(cpu_seconds(p.pid) for p in processes if not math.isnan(cpu_seconds(p.pid)))

    start = total()
    return lambda seconds: {"postgres": (total() - start) / seconds}


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
