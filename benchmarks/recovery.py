"""5. Recovery: ``kill -9`` of a worker under load, and a worker that hangs (``SIGSTOP``).

A supervisor with the default workers (one asyncio, one Trio) serves a steady load from this process:
``CALLERS`` clients calling ``work_<runtime>`` (an awaited 0.2 s sleep, neither read-only nor idempotent,
so a call its worker held is answered with an error instead of being sent again) back to back, and two
clients calling the other runtime's no-op every 20 ms (its failures and p99 during the restart are
recorded too). Once the pool's spare is READY and the worker has been up longer than the backoff reset
(``restart_backoff_reset``, 10 s: a worker that has served a while, not one in a crash loop), and after a
second of load and once ``/status`` shows at least ``BUSY_CALLS`` of its calls in flight on the worker, the
worker is SIGKILLed (by the pid ``/status`` gives), and the load goes on. The hang
case is the same with SIGSTOP: the supervisor must notice the silence (missed heartbeats) first. Every call records when it was sent and answered (HTTP, over
loopback, httpx) and whether it succeeded. Two figures:

- **in-flight answered**: from the kill to the last answer of the calls that were running on the killed
  worker (the supervisor answers them at once with "worker ... killed by SIGKILL");
- **serving again**: from the kill to the first successful answer of a call sent after the kill: two more
  clients call the killed runtime's no-op every 20 ms (a no-op call waits in the router for the restarted
  worker and then answers at once, so its answer marks the moment the runtime serves again).

Baselines of the same run: one no-op call over HTTP from the same client (p50 before the kill), and the
restart itself as the supervisor logged it (restart backoff + the new worker's spawn → READY, or 0 when
the slot adopted its spare). Both runtimes are killed and stopped in a full run (each in turn), the
asyncio one only with ``--quick``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass

import httpx

from benchmarks.lib.mcp_client import call_tool
from benchmarks.lib.results import BenchmarkError, Section, Target
from benchmarks.lib.servers import HttpServer, servers, start_supervisor, supervisor_workers
from benchmarks.lib.stats import fmt_us, median, percentile, ratio
from benchmarks.lib.suite import Suite

NAME = "recovery"
TITLE = "Recovery (kill -9 of a worker under load)"
CALLERS = 8
OTHER_CALLERS = 2
PROBE_CALLERS = 2
PROBE_PAUSE = 0.02
WORK_SECONDS = 0.2
LOAD_BEFORE = 1.0
LOAD_AFTER = 2.5
HANG_LOAD_AFTER = 4.0
SERVING_TARGET = 0.100
HANG_TARGET = 2.0
ANSWER_TARGET = 0.100
BACKOFF_RESET = 10.0
"""The default ``restart_backoff_reset``: the killed worker has been up at least this long."""
BUSY_CALLS = CALLERS // 2
"""Calls of the load in flight on the worker (``/status``) before it is killed."""
BUSY_DEADLINE = 10.0
SPARE_DEADLINE = 90.0
"""Longest wait for the pool's spare to be READY (and the worker old enough) before a case."""


@dataclass
class Record:
    tool: str
    sent: float
    answered: float
    ok: bool
    text: str


@dataclass
class Kill:
    runtime: str
    signal: str
    """``SIGKILL`` (a crash) or ``SIGSTOP`` (a hang)."""
    pid: int
    in_flight: int
    queued: int
    """Sent before the kill but not on the worker yet: served by the restarted worker."""
    answered_s: float
    serving_s: float
    failed_after: int
    other_failures: int
    other_p99_s: float
    restart_s: float
    """Restart backoff + spawn → READY of the new worker, from the supervisor's log; 0 for a spare."""
    by: str
    """What replaced the worker: ``spare`` or ``new process``."""
    noticed_s: float
    """From the kill to the supervisor's log line about the death."""
    messages: list[str]


def _noticed_seconds(server: HttpServer, worker_id: str, old_pid: int, killed_wall: float) -> float:
    """From the kill to the supervisor's log line about the death (its timestamp, ms resolution)."""
    text = server.log_path.read_text(errors="replace")
    found = re.search(
        rf"^(\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{{3}}) .*{worker_id} \(pid {old_pid}\) ", text, re.M
    )
    if found is None:
        return math.nan
    stamp = (
        datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
        + int(found.group(2)) / 1000
    )
    return stamp - killed_wall


def _restart_seconds(server: HttpServer, worker_id: str, old_pid: int) -> float:
    """``restarting in B s`` after the death of ``old_pid`` plus the new worker's ``started in S s``; only
    the backoff (0 when there was none) when the slot adopted its spare."""
    text = server.log_path.read_text(errors="replace")
    backoff = re.search(rf"{worker_id} \(pid {old_pid}\) .*restarting in ([0-9.]+) s", text)
    if _replaced_by(server, worker_id, old_pid) == "spare":
        return float(backoff.group(1)) if backoff else 0.0  # the backoff, if any, then the spare
    ready = [m for m in re.finditer(rf"{worker_id} ready: pid (\d+),.* started in ([0-9.]+) s", text)]
    fresh = [m for m in ready if int(m.group(1)) != old_pid]
    if backoff is None or not fresh:
        return math.nan
    return float(backoff.group(1)) + float(fresh[-1].group(2))


def _replaced_by(server: HttpServer, worker_id: str, old_pid: int) -> str:
    """``spare`` when the slot adopted its spare after the death of ``old_pid``, else ``new process``."""
    text = server.log_path.read_text(errors="replace")
    death = re.search(rf"{worker_id} \(pid {old_pid}\) ", text)
    after = text[death.end() :] if death else ""
    adopted, ready = after.find(f"{worker_id} adopted "), after.find(f"{worker_id} ready: ")
    return "spare" if adopted >= 0 and (ready < 0 or adopted < ready) else "new process"


async def _wait_for_spare(server: HttpServer, runtime: str, client: httpx.AsyncClient) -> None:
    """Until ``<runtime>-spare-0`` is READY and ``<runtime>-0`` has been up ``BACKOFF_RESET`` seconds.

    Raises:
        BenchmarkError: not within ``SPARE_DEADLINE`` seconds.
    """
    deadline = time.monotonic() + SPARE_DEADLINE
    while time.monotonic() < deadline:
        workers = {w["id"]: w for w in (await server.status(client))["workers"]}
        spare, worker = workers.get(f"{runtime}-spare-0"), workers.get(f"{runtime}-0")
        if spare and spare["state"] == "spare" and worker and worker["uptime_seconds"] > BACKOFF_RESET:
            return
        await asyncio.sleep(0.2)
    raise BenchmarkError(
        f"no READY {runtime} spare and a worker up {BACKOFF_RESET:g} s within {SPARE_DEADLINE:g} s"
    )


async def _busy_worker(server: HttpServer, worker_id: str, client: httpx.AsyncClient) -> int:
    """The pid of ``worker_id`` once ``/status`` shows calls of the load in flight on it (so the kill
    that follows hits running calls, not a load still on its way: on a busy machine the callers may
    not have reached the worker after ``LOAD_BEFORE``).

    Raises:
        BenchmarkError: no call in flight on it within ``BUSY_DEADLINE`` seconds.
    """
    deadline = time.monotonic() + BUSY_DEADLINE
    while time.monotonic() < deadline:
        workers = {w["id"]: w for w in (await server.status(client))["workers"]}
        worker = workers.get(worker_id)
        if worker is not None and worker["pid"] is not None and worker["in_flight"] >= BUSY_CALLS:
            return int(worker["pid"])
        await asyncio.sleep(0.02)
    raise BenchmarkError(f"no call of the load was in flight on {worker_id} within {BUSY_DEADLINE:g} s")


async def _kill_under_load(
    server: HttpServer, runtime: str, client: httpx.AsyncClient, sig: signal.Signals
) -> Kill:
    other = "trio" if runtime == "asyncio" else "asyncio"
    tool, other_tool = f"work_{runtime}", f"noop_{other}"
    records: list[Record] = []
    stop = asyncio.Event()

    async def caller(name: str, arguments: dict[str, float] | None, pause: float) -> None:
        while not stop.is_set():
            sent = time.perf_counter()
            try:
                ok, text = await call_tool(client, server.url, name, arguments)
            except httpx.HTTPError as exc:
                ok, text = False, f"{type(exc).__name__}: {exc}"
            records.append(Record(name, sent, time.perf_counter(), ok, text))
            await asyncio.sleep(pause)

    probe_tool = f"noop_{runtime}"
    stopped: int | None = None
    tasks = [asyncio.create_task(caller(tool, {"seconds": WORK_SECONDS}, 0)) for _ in range(CALLERS)]
    tasks += [asyncio.create_task(caller(other_tool, None, PROBE_PAUSE)) for _ in range(OTHER_CALLERS)]
    tasks += [asyncio.create_task(caller(probe_tool, None, PROBE_PAUSE)) for _ in range(PROBE_CALLERS)]
    try:
        await asyncio.sleep(LOAD_BEFORE)
        worker_id = f"{runtime}-0"
        pid = await _busy_worker(server, worker_id, client)
        killed_at, killed_wall = time.perf_counter(), time.time()
        os.kill(pid, sig)
        stopped = pid
        await asyncio.sleep(HANG_LOAD_AFTER if sig == signal.SIGSTOP else LOAD_AFTER)
    finally:
        if sig == signal.SIGSTOP and stopped is not None:  # killed by the supervisor, unless cut short
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGKILL)
        stop.set()
        await asyncio.wait(tasks, timeout=WORK_SECONDS + 15)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    calls = [r for r in records if r.tool == tool]
    running = [r for r in calls if r.sent < killed_at < r.answered]
    # A call sent before the kill may still have been on its way (client, front) rather than on the worker:
    # it then waits for the restarted worker and succeeds. The dead worker's own calls are the ones answered
    # with its death (these tools are not retry-safe, so none of them can succeed).
    held = [r for r in running if not r.ok and "killed" in r.text]
    queued = [r for r in running if r.ok]
    after = [r for r in calls if r.sent >= killed_at]
    succeeded = [r.answered for r in records if r.tool == probe_tool and r.sent >= killed_at and r.ok]
    if not held:
        raise BenchmarkError(f"no {tool} call was running when {worker_id} was killed")
    if not succeeded:
        raise BenchmarkError(f"no {probe_tool} call succeeded within {LOAD_AFTER:g} s of the kill")
    others = [r for r in records if r.tool == other_tool and r.answered > killed_at]
    restart_s = _restart_seconds(server, worker_id, pid)
    return Kill(
        runtime=runtime,
        signal=sig.name,
        pid=pid,
        in_flight=len(held),
        queued=len(queued),
        answered_s=max(r.answered for r in held) - killed_at,
        serving_s=min(succeeded) - killed_at,
        failed_after=sum(not r.ok for r in after) + sum(not r.ok and "killed" not in r.text for r in running),
        other_failures=sum(not r.ok for r in others),
        other_p99_s=percentile([r.answered - r.sent for r in others], 0.99),
        restart_s=restart_s,
        by=_replaced_by(server, worker_id, pid),
        noticed_s=_noticed_seconds(server, worker_id, pid, killed_wall),
        messages=sorted({r.text for r in held if not r.ok})[:2],
    )


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    runtimes = suite.pick(["asyncio", "trio"], ["asyncio"])
    kills: list[Kill] = []
    async with servers(suite) as started:
        server = await start_supervisor(suite, "recovery-supervisor")
        started.append(server)
        limits = httpx.Limits(max_connections=CALLERS + OTHER_CALLERS + PROBE_CALLERS + 4)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            for runtime in ("asyncio", "trio"):
                await server.verify(f"work_{runtime}", {"seconds": 0.01})
            noop: list[float] = []
            for _ in range(100):
                start = time.perf_counter()
                ok, text = await call_tool(client, server.url, "noop_asyncio")
                if not ok:
                    raise BenchmarkError(f"noop_asyncio failed: {text}")
                noop.append(time.perf_counter() - start)
            noop_p50 = median(noop)
            for sig, runtime in [(s, r) for s in (signal.SIGKILL, signal.SIGSTOP) for r in runtimes]:
                await _wait_for_spare(server, runtime, client)
                kills.append(await _kill_under_load(server, runtime, client, sig))
                for worker_id, pid in (await supervisor_workers(server)).items():
                    suite.watch(f"{server.name}/{worker_id}", pid)
                    server.workers[worker_id] = pid
    for kill in kills:
        hang = kill.signal == "SIGSTOP"
        if hang:
            section.targets.append(
                Target(
                    key=f"recovery-{kill.runtime}-hang-serving",
                    what=f"SIGSTOP of the {kill.runtime} worker: serving again",
                    target=f"≤ {HANG_TARGET:g} s",
                    limit=HANG_TARGET,
                    better="lower",
                    measured=kill.serving_s,
                    ratio=ratio(kill.serving_s, kill.noticed_s),
                    ratio_of="÷ the hang noticed (missed heartbeats logged)",
                    absolute=f"{fmt_us(kill.serving_s * 1e6)} (noticed {fmt_us(kill.noticed_s * 1e6)}, by {kill.by})",
                )
            )
            continue
        section.targets += [
            Target(
                key=f"recovery-{kill.runtime}-serving",
                what=f"kill -9 of the {kill.runtime} worker: serving again",
                target=f"≤ {SERVING_TARGET * 1000:g} ms",
                limit=SERVING_TARGET,
                better="lower",
                measured=kill.serving_s,
                ratio=ratio(kill.serving_s, kill.restart_s),
                ratio_of="÷ restart (backoff + spawn → READY)",
                absolute=f"{fmt_us(kill.serving_s * 1e6)} (by {kill.by}, restart {fmt_us(kill.restart_s * 1e6)})",
            ),
            Target(
                key=f"recovery-{kill.runtime}-answered",
                what=f"kill -9 of the {kill.runtime} worker: its in-flight calls answered",
                target=f"≤ {ANSWER_TARGET * 1000:g} ms",
                limit=ANSWER_TARGET,
                better="lower",
                measured=kill.answered_s,
                ratio=ratio(kill.answered_s, noop_p50),
                ratio_of="÷ one no-op call over HTTP (p50)",
                absolute=f"{fmt_us(kill.answered_s * 1e6)} for {kill.in_flight} calls (no-op {fmt_us(noop_p50 * 1e6)})",
            ),
        ]
    section.details += [
        (
            f"{CALLERS} clients call `work_<runtime>` ({WORK_SECONDS:g} s awaited sleep, not retry-safe) back to "
            f"back, {PROBE_CALLERS} call its no-op every {PROBE_PAUSE * 1000:g} ms (serving again = the first success of one "
            f"sent after the kill) and {OTHER_CALLERS} the other runtime's no-op every {PROBE_PAUSE * 1000:g} ms; once the pool's spare is READY and the worker has been up "
            f"{BACKOFF_RESET:g} s, after {LOAD_BEFORE:g} s of load the worker is SIGKILLed (or SIGSTOPped) by pid, and the load goes on "
            f"{LOAD_AFTER:g} s ({HANG_LOAD_AFTER:g} s). Times are taken by the client (httpx over "
            "loopback); the restart time is the supervisor's own log (backoff + the new worker's spawn → READY)."
        ),
        "",
        "| signal | worker | held by it | not on it yet | held calls answered after | death logged after | serving again after | restart (log) | other calls failed | other runtime: failures, p99 | answer |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for kill in kills:
        section.details.append(
            f"| {kill.signal} | {kill.runtime}-0 (pid {kill.pid}) | {kill.in_flight} | {kill.queued} | {fmt_us(kill.answered_s * 1e6)} "
            f"| {fmt_us(kill.noticed_s * 1e6)} "
            f"| {fmt_us(kill.serving_s * 1e6)} | {kill.by}, {fmt_us(kill.restart_s * 1e6)} | {kill.failed_after} "
            f"| {kill.other_failures}, {fmt_us(kill.other_p99_s * 1e6)} | {'; '.join(kill.messages)} |"
        )
    section.data["kills"] = [
        {
            "runtime": k.runtime,
            "signal": k.signal,
            "serving": k.serving_s,
            "restart": k.restart_s,
            "by": k.by,
            "answered": k.answered_s,
        }
        for k in kills
    ]
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
