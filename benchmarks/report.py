"""The report of ``python -m benchmarks``: a markdown table of every target with its measured ratio and the
absolute figures, a bar chart of the ratios against their targets (matplotlib, Agg backend), the machine,
and the section "What limits it", written from the figures and the profile of the same run.

Writes ``benchmarks/results/<date>.md`` and ``.png``; a run of every benchmark also regenerates
``docs/performance.md`` (a run with ``--only`` writes ``<date>-<names>.md``/``.png`` and leaves the page).
"""

from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from benchmarks import hop, pyspy
from benchmarks.lib.machine import cpus, operating_system, package_versions, python_version
from benchmarks.lib.results import Section, Target
from benchmarks.lib.running import REPO_ROOT, RESULTS_DIR
from benchmarks.lib.stats import fmt_ratio

DOCS_PAGE = REPO_ROOT / "docs" / "performance.md"
COMMAND = ".venv/bin/python -m benchmarks"
PACKAGES = (
    "mcp", "mcp-types", "uvicorn", "starlette", "fastapi", "pydantic", "pydantic-core", "anyio", "httptools",
    "uvloop", "trio", "pyzmq", "msgpack", "psutil", "httpx", "matplotlib", "py-spy",
)  # fmt: skip


@dataclass
class RunInfo:
    quick: bool
    only: list[str]
    seconds: float
    loop: str
    tools: dict[str, str]
    others: float
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    code: str = ""
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())


def _versions() -> str:
    versions = package_versions(PACKAGES) | {"libzmq": zmq.zmq_version()}
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def machine_lines(info: RunInfo) -> list[str]:
    memory = psutil.virtual_memory().total / 2**30
    load0 = " ".join(f"{x:.2f}" for x in info.load_start)
    load1 = " ".join(f"{x:.2f}" for x in info.load_end)
    return [
        f"- CPU: {cpus()}; {memory:.1f} GiB RAM",
        f"- OS: {operating_system()}",
        f"- Python {python_version()}; benchmark loop {info.loop}",
        f"- packages: {_versions()}",
        f"- tools: wrk: {info.tools.get('wrk', '?')}; py-spy: {info.tools.get('py-spy', '?')}",
        f"- code measured: {info.code or '?'}",
        (
            f"- load average {load0} at the start, {load1} at the end; other processes used "
            f"{_percent(info.others)} of the machine's CPU time during the run (0% on a quiet machine)"
        ),
        (
            f"- run: {'`--quick`' if info.quick else 'full'}"
            f"{' `--only ' + ' '.join(info.only) + '`' if info.only else ''}, {info.seconds:.0f} s in all; "
            "loopback only"
        ),
    ]


def _percent(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.0%}"


def _verdict(target: Target) -> str:
    if target.unavailable is not None:
        return target.unavailable
    if target.met is None:
        return "not measured"
    return "met" if target.met else "**not met**"


def table(sections: list[Section]) -> list[str]:
    lines = [
        "| # | benchmark | target | measured ratio | ratio of | absolute (ours vs baseline) | verdict |",
        "|--:|---|---|--:|---|---|---|",
    ]
    number = 0
    for section in sections:
        if section.error is not None and not section.targets:
            number += 1
            lines.append(
                f"| {number} | {section.title} | — | — | — | — | failed: {section.error.splitlines()[0]} |"
            )
            continue
        for target in section.targets:
            number += 1
            measured = "—" if target.unavailable else fmt_ratio(target.ratio)
            note = f" ({target.note})" if target.note else ""
            lines.append(
                f"| {number} | {target.what} | {target.target} | {measured} | {target.ratio_of or '—'} "
                f"| {target.absolute or '—'}{note} | {_verdict(target)} |"
            )
    return lines


def context_table(sections: list[Section]) -> list[str]:
    rows = [row for section in sections for row in section.context]
    if not rows:
        return []
    lines = ["| figure | ratio | ratio of | absolute |", "|---|--:|---|---|"]
    lines += [f"| {r.what} | {fmt_ratio(r.ratio)} | {r.ratio_of} | {r.absolute} |" for r in rows]
    return lines


def chart(sections: list[Section], path: Path, title: str) -> bool:
    """One horizontal bar per target: how the figure stands against it (1 = the target, right = better)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    targets = [t for s in sections for t in s.targets]
    if not targets:
        return False
    low, high = 0.05, 20.0
    figure, axes = plt.subplots(figsize=(12, 0.42 * len(targets) + 1.6))
    for index, target in enumerate(targets):
        score = target.score
        if score is None:
            axes.text(low * 1.15, index, target.verdict, va="center", fontsize=8, color="grey")
            continue
        drawn = min(max(score, low), high)
        colour = "#2e7d32" if target.met else "#c62828"
        axes.barh(index, drawn, color=colour, height=0.6)
        beyond = " (bar cut at 20)" if score > high else ""
        label = f"{fmt_ratio(target.ratio)} {target.ratio_of}; {target.absolute.split(' (')[0]}{beyond}"
        axes.text(drawn * 1.08, index, label.replace("`", ""), va="center", fontsize=7)
    axes.axvline(1.0, color="black", linewidth=1, linestyle="--")
    axes.set_xscale("log")
    axes.set_xlim(low, high * 8)
    axes.set_yticks(range(len(targets)), [f"{t.what}  [{t.target}]" for t in targets], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(
        "figure ÷ target (for ≤ targets: target ÷ figure); 1 = the target, right of the dashed line = met; log scale"
    )
    axes.set_title(
        title + " — bar labels: the ratio against this run's baseline; absolute figure", fontsize=10
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return True


def _cores(data: dict[str, Any], server: str) -> dict[str, float]:
    cores = data.get("cpu", {}).get(server, {})
    return {str(k): float(v) for k, v in cores.items()}


def _limits_e2e(section: Section) -> list[str]:
    lines: list[str] = []
    rates = section.data.get("rates", {})
    sup_rate, sdk_rate = rates.get("e2e-supervisor", math.nan), rates.get("e2e-mcpserver", math.nan)
    low_rate = rates.get("e2e-lowlevel", math.nan)
    sup_cores, sdk_cores = _cores(section.data, "e2e-supervisor"), _cores(section.data, "e2e-mcpserver")
    front, sdk_front = sup_cores.get("front", math.nan), sdk_cores.get("front", math.nan)
    per_call, sdk_per_call = front / sup_rate * 1e3, sdk_front / sdk_rate * 1e3
    workers = sum(v for k, v in sup_cores.items() if k != "front")
    no_fast_path = rates.get("e2e-supervisor-sdk", math.nan)
    sdk_path_cores = _cores(section.data, "e2e-supervisor-sdk").get("front", math.nan)
    lines.append(
        f"- **The front is the limit of a trivial call, and it is one Python process.** At 32 connections the "
        f"supervisor served {sup_rate:,.0f} calls/s, {fmt_ratio(sup_rate / sdk_rate)} the SDK-only server "
        f"({sdk_rate:,.0f}/s; target 4×). Its front used {front:.2f} core and spent {per_call:.2f} ms of CPU per "
        f"call, against {sdk_per_call:.2f} ms in the SDK-only server ({fmt_ratio(per_call / sdk_per_call)}); the "
        f"two workers together used {workers:.2f} core. A stateless `tools/call` takes the fast path (uvicorn → "
        "`FastPath`, running the SDK's own checks → `Router.call` → ZeroMQ): the same supervisor with "
        f"`fast_path = false`, where the SDK's transport answers every request, served {no_fast_path:,.0f}/s "
        f"({fmt_ratio(sup_rate / no_fast_path)} less) at {sdk_path_cores / no_fast_path * 1e3:.2f} ms of front CPU "
        "per call. What is left per call is HTTP parsing and writing, the fast path's checks, the router's "
        "bookkeeping and the ZeroMQ send and receive, in one event loop: workers add cores for tools, not for "
        "the protocol work a no-op call consists of. For scale: the low-level SDK `Server` in one "
        f"process did {fmt_ratio(low_rate / sdk_rate)} `MCPServer`, and a bare ASGI app without MCP on the same "
        f"uvicorn did {fmt_ratio(rates.get('e2e-asgi', math.nan) / sup_rate)} the supervisor's req/s under the same "
        "wrk, so the load generator is not the limit."
    )
    profile: Any = section.data.get("profile")
    if isinstance(profile, pyspy.Profile) and profile.samples:
        layers = ", ".join(
            f"{name} {profile.share(count):.0%}" for name, count in profile.layers.most_common(7)
        )
        functions = "; ".join(
            f"{name} {profile.share(count):.1%} ← {profile.callers[name].most_common(1)[0][0]}"
            for name, count in profile.functions.most_common(6)
        )
        inclusive = ", ".join(
            f"{name} {profile.share(count):.0%}" for name, count in profile.inclusive.most_common()
        )
        threads = ", ".join(f"{name} {count:,}" for name, count in profile.threads.most_common())
        lines += [
            (
                f"- **Top costs in the front** (py-spy on the supervisor at 32 connections, {profile.samples:,} "
                f"samples of its event-loop thread; samples per thread: {threads}). Self time by layer: {layers}."
            ),
            f"- Top functions by self time (← the frame of another layer that called them): {functions}.",
            f"- Inclusive, overlapping (a sample counts for every layer on its stack): {inclusive}.",
        ]
    elif profile is not None:
        lines.append(f"- No profile of the front: {profile}.")
    return lines


def _limits_hop(section: Section) -> list[str]:
    paths = section.data.get("paths_p50_us", {})
    echo = paths.get(hop.BASELINE, math.nan)
    router = paths.get("router-only", math.nan)
    parts = []
    for runtime in ("asyncio", "trio"):
        full, worker = paths.get(f"hop-{runtime}", math.nan), paths.get(f"worker-only-{runtime}", math.nan)
        parts.append(
            f"{runtime}: hop {full:.0f} µs = {fmt_ratio(full / echo)} the echo; a real worker behind a bare ROUTER "
            f"{worker:.0f} µs (+{worker - echo:.0f} µs over the echo)"
        )
    return [
        (
            f"- **The hop** is bounded below by libzmq's ipc round trip between two processes: the bare pyzmq "
            f"echo took {echo:.0f} µs at p50 in this run (the targets were set where it took "
            f"{hop.ECHO_WHEN_SET_US:.0f} µs: 150 µs is 1.5× that). The router's side "
            f"(`Router.call` in front of a stand-in worker) took {router:.0f} µs (+{router - echo:.0f} µs); "
            + "; ".join(parts)
            + ". Each side's Python (socket wake-up in asyncio/Trio, msgpack, starting the call's task, the "
            "router's bookkeeping) adds to that transport floor."
        )
    ]


def _limits_cpu(section: Section) -> list[str]:
    data = section.data
    cores = data.get("cores", {})
    two = cores.get("cpu-supervisor-2", {})
    workers = sum(v for k, v in two.items() if k != "front")
    usable = (os.cpu_count() or 1) * (1 - section.others) if not math.isnan(section.others) else math.nan
    return [
        (
            f"- **CPU-bound calls**: two pinned workers served {fmt_ratio(data.get('scaling'))} the single-process "
            f"server (target 1.8×), {fmt_ratio(data.get('per_worker'))} one worker, and "
            f"{fmt_ratio(data.get('unpinned'))} without pinning. The two workers used {workers:.2f} cores between "
            f"them (the front {two.get('front', math.nan):.2f}); other processes used {_percent(section.others)} of "
            f"the machine meanwhile, leaving about {usable:.1f} of its {os.cpu_count()} cores to this run, wrk "
            "included. " + _pinning(data.get("scaling"), data.get("unpinned"))
        )
    ]


def _pinning(pinned: float | None, unpinned: float | None) -> str:
    if pinned is None or unpinned is None:
        return ""
    if unpinned > pinned * 1.1:
        return (
            "Pinning cost throughput here: a pinned worker waits for its own core while other processes use it, "
            "where an unpinned one (or the single process) runs wherever there is room."
        )
    if pinned > unpinned * 1.1:
        return f"Unpinned workers did less in this run ({fmt_ratio(unpinned)} against {fmt_ratio(pinned)} pinned)."
    return "Pinned or not made no difference beyond noise in this run."


def _limits_other(by_name: dict[str, Section]) -> list[str]:
    lines: list[str] = []
    isolation = by_name.get("isolation")
    if isolation is not None and isolation.error is None:
        ratios = ", ".join(fmt_ratio(r) for r in isolation.data.get("ratios", []))
        baseline = ", ".join(fmt_ratio(r) for r in isolation.data.get("baseline", []))
        lines.append(
            f"- **Isolation** holds by construction: a blocked worker holds only its own calls; the other runtime's "
            f"p99 was {ratios} its idle p99, while the single-process server's p99 went to {baseline} its idle p99 "
            "(every call waits for the block to end)."
        )
    recovery = by_name.get("recovery")
    if recovery is not None and recovery.error is None and recovery.data.get("kills"):
        kills = recovery.data["kills"]
        lines.append(
            "- **Recovery is a promotion, or a restart.** Serving again took "
            + ", ".join(
                f"{k['serving'] * 1000:.0f} ms ({k['runtime']}, {k.get('signal', 'SIGKILL')}, by {k.get('by', 'new process')})"
                for k in kills
            )
            + ". A slot whose pool has a READY spare adopts it at once (no backoff, no imports); without one, "
            "the restart is the backoff (0.1 s) then a fresh interpreter importing the tool modules until READY. "
            "A SIGSTOPped worker is noticed after three silent heartbeat intervals (3 × 0.4 s) at the next tick. "
            "The calls the dead worker held were answered "
            + ", ".join(f"{k['answered'] * 1000:.0f} ms" for k in kills)
            + " after the signal: the event loop's child watcher reaps a dead worker at once."
        )
    routing = by_name.get("routing")
    if routing is not None and routing.error is None and "uncached_ns" in routing.data:
        data = routing.data
        lines.append(
            f"- **Routing: caching does not matter for speed.** Uncached, the worst case of `detect_runtime` costs "
            f"{data['uncached_ns']:,.0f} ns = {data['uncached_ns'] / data['hop_ns']:.2%} of one hop; cached "
            f"{data['cached_ns']:,.0f} ns. And it is not on the call path: it runs once per tool when a worker "
            f"loads its tools; per call the router does a dictionary lookup ({data['lookup_ns']:,.0f} ns)."
        )
    memory = by_name.get("memory")
    if memory is not None and memory.error is None and "supervisor_idle" in memory.data:
        data = memory.data
        workers = ", ".join(f"{runtime} {mb:.0f} MB" for runtime, mb in data["worker_idle"].items())
        growth = ", ".join(f"{runtime} {value:+.1f}%" for runtime, value in data["growth"].items())
        imports = data.get("imports", {})
        lines.append(
            f"- **Memory**: the supervisor idles at {data['supervisor_idle']:.0f} MB, "
            f"{fmt_ratio(data['supervisor_idle'] / data['sdk_idle'])} the SDK-only server's {data['sdk_idle']:.0f} MB, "
            f"and importing its modules alone takes {imports.get('supervisor', math.nan):.0f} MB (the SDK, FastAPI, "
            f"uvicorn, pydantic, pyzmq; the SDK-only server's imports take {imports.get('sdk', math.nan):.0f} MB): "
            "the 80 MB target is a matter of what the front imports, not of state it keeps. The workers idle at "
            f"{workers}, of which imports {imports.get('worker', math.nan):.0f} MB. Over {data['calls']:,} calls per "
            f"worker their RSS moved {growth}; the supervisor's moved {data['supervisor_growth']:+.1f}% over "
            f"{data['supervisor_calls']:,} HTTP calls (the SDK-only server's {data['sdk_growth']:+.1f}% under the "
            "same load)."
        )
    return lines


def limits(sections: list[Section]) -> list[str]:
    """The section "What limits it", from the figures of this run."""
    by_name = {section.name: section for section in sections}
    lines: list[str] = []
    for name, write in (("e2e", _limits_e2e), ("hop", _limits_hop), ("cpu", _limits_cpu)):
        section = by_name.get(name)
        if section is not None and section.error is None:
            lines += write(section)
    return lines + _limits_other(by_name)


def render(sections: list[Section], info: RunInfo, *, for_docs: bool, chart_path: str | None = None) -> str:
    out: list[str] = []
    if for_docs:
        out += [
            "# Performance",
            "",
            "<!-- Generated by `python -m benchmarks` (benchmarks/report.py); edits are overwritten. -->",
            "",
            "## How to run",
            "",
            "```sh",
            "apt-get install -y wrk                      # the HTTP load generator",
            ".venv/bin/pip install -e '.[bench]'         # matplotlib, py-spy, httpx",
            f"{COMMAND}                  # every benchmark, about 7 minutes on 2 cores",
            f"{COMMAND} --quick          # shorter runs",
            f"{COMMAND} --only e2e       # one benchmark (hop, e2e, cpu, isolation, recovery, taskqueue, mcptasks, routing, memory)",
            "```",
            "",
            "Everything runs on this machine over loopback; every process the run starts is stopped by pid, on",
            "Ctrl-C too. The machine is shared and noisy, so **every figure is a ratio against a baseline measured",
            "in the same run**; absolute numbers are shown beside them for context only. Targets are reported as",
            "met or not met, never asserted. A run writes `benchmarks/results/<date>.md` and `.png` and this page.",
            "",
            f"## Results ({info.date}{', --quick' if info.quick else ''})",
            "",
        ]
    else:
        out += [f"# mcp-supervisor benchmarks — {info.date}", ""]
    out += table(sections)
    if chart_path is not None:
        out += ["", f"![every target: the figure against its target]({chart_path})"]
    context = context_table(sections)
    if context:
        out += ["", "### Context (no target)", ""] + context
    out += ["", "## What limits it", ""] + limits(sections)
    out += [
        "",
        "Changes made for speed, each with its measured effect, are logged by hand in "
        "[performance-changes.md](performance-changes.md).",
    ]
    out += ["", "## Machine", ""] + machine_lines(info)
    out += ["", "## How each figure was measured", ""]
    for section in sections:
        out += [f"### {section.title}", ""]
        if section.error:
            out += [f"Failed: `{section.error.splitlines()[0]}`", ""]
        out += section.details
        out += [
            "",
            f"_{section.seconds:.0f} s; other processes used {_percent(section.others)} of the CPU meanwhile._",
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def write(sections: list[Section], info: RunInfo) -> list[Path]:
    """Write the results (and, for a run of every benchmark, docs/performance.md); returns the paths."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = info.date if not info.only else f"{info.date}-{'-'.join(info.only)}"
    png = RESULTS_DIR / f"{stem}.png"
    title = f"mcp-supervisor benchmarks, {info.date}{' (--quick)' if info.quick else ''}"
    drawn = chart(sections, png, title)
    written: list[Path] = []
    if drawn:
        written.append(png)
    e2e = next((section for section in sections if section.name == "e2e"), None)
    profile: Any = e2e.data.get("profile") if e2e is not None else None
    if isinstance(profile, pyspy.Profile) and profile.raw:
        stacks = RESULTS_DIR / f"{stem}-supervisor-profile.txt"
        stacks.write_text(pyspy.shorten(profile.raw))
        written.append(stacks)
    markdown = RESULTS_DIR / f"{stem}.md"
    markdown.write_text(render(sections, info, for_docs=False, chart_path=png.name if drawn else None))
    written.append(markdown)
    if not info.only:
        relative = os.path.relpath(png, DOCS_PAGE.parent)
        DOCS_PAGE.write_text(render(sections, info, for_docs=True, chart_path=relative if drawn else None))
        written.append(DOCS_PAGE)
    return written
