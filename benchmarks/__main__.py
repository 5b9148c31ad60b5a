"""``python -m benchmarks``: every benchmark of mcp-supervisor in one go, on this machine.

Runs, in order (``--only NAME`` runs one of them, ``--quick`` shortens every one):

====================  ======================================================================================
``hop``               router → worker → router for a no-op tool, both runtimes (``benchmarks.hop``)
``e2e``               tools/call over HTTP (wrk) vs a single-process server built with the SDK alone
``cpu``               a CPU-bound tool on one worker per core vs the single-process server
``isolation``         p99 of one runtime while the other's event loop is blocked
``recovery``          kill -9 of a worker under load: in-flight calls answered, serving again
``taskqueue``         task submissions/s and completions/s with durability on, vs a plain tools/call
``mcptasks``          MCP task creation through tools/call and tasks/get/s, durable, vs a plain tools/call
``routing``           ``shared.detect_runtime`` cached vs uncached, in proportion to one hop
``memory``            RSS of the supervisor and its workers idle and after load
====================  ======================================================================================

Every figure is a ratio against a baseline measured in the same run (the machine is shared and noisy);
absolute numbers are shown beside them. Loopback only; the whole run is bounded (``OVERALL_DEADLINE``),
and every process it starts is stopped by pid, on Ctrl-C and SIGTERM too. Writes
``benchmarks/results/<date>.md``, ``benchmarks/results/<date>.png`` and ``docs/performance.md``.

Each benchmark also runs alone, as with ``--only``: ``python -m benchmarks.e2e [--quick] [--no-write]`` (and
``benchmarks.hop_cost`` for ``hop``); ``python -m benchmarks.hop`` is the hop benchmark itself, with its own
larger budget and report.

Needs ``wrk`` (``apt-get install wrk``) and the ``bench`` extra (``pip install -e '.[bench]'``: matplotlib,
py-spy, httpx). Run from anywhere::

    .venv/bin/python -m benchmarks [--quick] [--only NAME] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from benchmarks import report
from benchmarks.lib.children import Children, tail
from benchmarks.lib.machine import cpu_snapshot, others_share
from benchmarks.lib.results import Section
from benchmarks.lib.running import (
    LOG,
    REPO_ROOT,
    cancel_on_sigterm,
    install_logging,
    loop_name,
    private_dir,
    run_loop,
)
from benchmarks.lib.suite import Suite

BENCHMARKS: dict[str, str] = {
    "hop": "benchmarks.hop_cost",
    "e2e": "benchmarks.e2e",
    "cpu": "benchmarks.cpu",
    "isolation": "benchmarks.isolation",
    "recovery": "benchmarks.recovery",
    "taskqueue": "benchmarks.taskqueue",
    "mcptasks": "benchmarks.mcptasks",
    "routing": "benchmarks.routing",
    "memory": "benchmarks.memory",
}
OVERALL_DEADLINE = {False: 720.0, True: 360.0}
"""The whole run, seconds (full, ``--quick``); what has not run by then is reported as not run."""
BENCHMARK_DEADLINE = 240.0
"""One benchmark, seconds."""

logger = logging.getLogger("benchmarks")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run every benchmark of mcp-supervisor on this machine; write the report.",
    )
    parser.add_argument("--only", choices=list(BENCHMARKS), action="append", help="run only this benchmark")
    parser.add_argument("--quick", action="store_true", help="shorter runs (about a third of the time)")
    parser.add_argument("--no-write", action="store_true", help="print the report; write no file")
    return parser.parse_args(argv)


def _find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def _code_version() -> str:
    """The commit, and the product files that differ from it (read-only git; nothing is written)."""
    commit = _tool_version(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "--no-optional-locks", "status", "--porcelain", "--",
             "supervisor", "shared", "asyncio_worker", "trio_worker"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return f"commit {commit}"
    changed = [line[3:] for line in done.stdout.splitlines() if line.strip()]
    if not changed:
        return f"commit {commit}, product code unmodified"
    return f"commit {commit} with uncommitted changes to {len(changed)} product file(s): {', '.join(changed)}"


async def _run_one(suite: Suite, name: str, module: ModuleType) -> Section:
    """One benchmark in a task of its own: a child that dies, an error or its deadline fail only it."""
    title = str(getattr(module, "TITLE", name))
    task: asyncio.Task[Section] = asyncio.create_task(module.run(suite))
    suite.children.main = task
    try:
        async with asyncio.timeout(BENCHMARK_DEADLINE):
            return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # Ctrl-C, SIGTERM or the run's deadline
        reason = suite.children.died or "cancelled"
        suite.children.died = None
        found = re.search(r"\(pid (\d+)\)", reason)
        log_path = suite.logs.get(int(found.group(1))) if found else None
        if log_path is not None:
            logger.warning("%s; its last output:\n%s", reason, tail(log_path, 15))
        return Section(name, title, error=reason)
    except TimeoutError:
        return Section(name, title, error=f"did not finish within {BENCHMARK_DEADLINE:g} s")
    except Exception as exc:
        logger.warning("benchmark %s failed; last log lines:\n%s", name, suite.log.tail(20))
        return Section(name, title, error=f"{type(exc).__name__}: {exc}")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def run(suite: Suite, names: list[str]) -> str:
    """Every benchmark of ``names`` in turn within ``OVERALL_DEADLINE``; returns the event loop's name."""
    cancel_on_sigterm()
    started = time.monotonic()
    deadline = OVERALL_DEADLINE[suite.quick]
    try:
        async with asyncio.timeout(deadline):
            for name in names:
                module = importlib.import_module(BENCHMARKS[name])
                print(f"[{time.monotonic() - started:5.0f} s] {name}: {module.TITLE} ...", file=sys.stderr)
                before = cpu_snapshot()
                begun = time.monotonic()
                section = await _run_one(suite, name, module)
                section.seconds = time.monotonic() - begun
                section.others = others_share(before)
                suite.sections[name] = section
                outcome = f"failed: {section.error}" if section.error else "done"
                print(
                    f"[{time.monotonic() - started:5.0f} s] {name}: {outcome} ({section.seconds:.0f} s)",
                    file=sys.stderr,
                )
    except TimeoutError:
        for name in names:
            if name not in suite.sections:
                module = importlib.import_module(BENCHMARKS[name])
                suite.sections[name] = Section(
                    name, module.TITLE, error=f"not run: the run's bound of {deadline:g} s was reached"
                )
    return loop_name()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    os.chdir(REPO_ROOT)  # the workers import the benchmark tool modules from their working directory
    install_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    wrk, py_spy = shutil.which("wrk"), _find_py_spy()
    tools = {
        "wrk": _tool_version([wrk, "-v"]) if wrk else "not installed",
        "py-spy": _tool_version([py_spy, "--version"]) if py_spy else "not installed",
    }
    code = _code_version()
    machine_start = cpu_snapshot()
    load_start = os.getloadavg()
    started = time.perf_counter()
    with private_dir("benchmarks-") as tmp:
        suite = Suite(args.quick, tmp, Children(), LOG, wrk=wrk, py_spy=py_spy)
        try:
            loop = run_loop(run(suite, names))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted: every process this run started is stopped; nothing written", file=sys.stderr)
            return 130
        finally:
            suite.children.finish(suite.kill_watched())
    run_info = report.RunInfo(
        quick=args.quick,
        only=args.only or [],
        seconds=time.perf_counter() - started,
        loop=loop,
        tools=tools,
        others=others_share(machine_start),
        load_start=load_start,
        load_end=os.getloadavg(),
        code=code,
    )
    sections = [suite.sections[name] for name in names if name in suite.sections]
    text = report.render(sections, run_info, for_docs=False)
    print(text)
    if not args.no_write:
        with contextlib.suppress(KeyboardInterrupt):
            for path in report.write(sections, run_info):
                print(f"written: {path.relative_to(REPO_ROOT)}", file=sys.stderr)
    failed = [section.name for section in sections if section.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
