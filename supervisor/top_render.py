"""The pictures of ``python -m supervisor top``: a header (with the task queue's line), a workers table,
a tools table and the tool modules' load errors, drawn with rich from a status document and its ``Rates``.

Pure functions (``render_header``, ``render_queue``, ``render_workers``, ``render_remote_workers``,
``render_tools``, ``render_quarantined``, ``render_load_errors``, ``render_frame`` and the ``format_*``
helpers), so they are tested without a terminal and without a supervisor.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .top_rates import Rates, compute_rates, tool_entries, worker_key

STATE_STYLES = {
    "ready": "green",
    "starting": "cyan",
    "draining": "yellow",
    "backoff": "yellow",
    "failed": "bold red",
    "stopped": "dim",
}


# -- formatting ----------------------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """``42s``, ``12m03s``, ``3h04m``, ``2d03h``; ``-`` for ``None``."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_mb(value: int | None) -> str:
    """Bytes as mebibytes with one decimal (``48.3``); ``-`` for ``None``."""
    return "-" if value is None else f"{value / 1048576:.1f}"


def format_number(value: float | None, decimals: int = 1) -> str:
    """A figure with ``decimals`` decimals; ``-`` for ``None``."""
    return "-" if value is None else f"{value:.{decimals}f}"


def format_ms(value: float | None) -> str:
    """A latency in ms with as many decimals as its size deserves (``0.42``, ``12.5``, ``1503``)."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def format_cores(cores: list[int] | None) -> str:
    """CPU affinity as ``3`` or ``0-3`` or ``0,2``; ``-`` when unknown."""
    if not cores:
        return "-"
    ordered = sorted(cores)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered))


def _value(value: Any) -> str:
    """``str(value)``, or ``-`` for ``None``."""
    return "-" if value is None else str(value)


def _state(document: dict[str, Any]) -> Text:
    """A worker's state, coloured (``STATE_STYLES``)."""
    state = str(document.get("state", "?"))
    return Text(state, style=STATE_STYLES.get(state, ""))


def _count_of_errors(count: int) -> Text:
    """An error count, red unless it is 0."""
    return Text(str(count), style="red" if count else "")


# -- rendering -----------------------------------------------------------------------------------------


WORKER_COLUMNS = (
    "ID", "RUNTIME", "PID", "STATE", "CORE", "CPU%", "MEM MB", "FDS", "THR", "INFL", "SERVED", "FAILED",
    "CALLS/S", "RESTARTS", "UP",
)  # fmt: skip
WORKER_COLUMNS_DROPPED_FIRST = (
    "THR",
    "FDS",
    "CORE",
    "UP",
    "MEM MB",
    "CPU%",
    "RUNTIME",
    "CALLS/S",
    "RESTARTS",
)
"""The workers table's columns a narrow terminal drops, first to last, until the rest fits: ID, PID, STATE,
in flight, served and failed stay (an 80-column terminal shows them without an ellipsis)."""
REMOTE_COLUMNS = ("ID", "NODE", "POOL", "PID", "STATE", "IN FLIGHT", "SERVED", "FAILED")
TOOL_COLUMNS = ("TOOL", "RUNTIME", "CALLS", "CALLS/S", "P50 MS", "P99 MS", "ERRORS")


def _table(title: str, columns: Sequence[str], text: Collection[str], last: str) -> Table:
    """A titled table with ``columns`` on one line each (the ``text`` ones left-aligned, figures
    right-aligned) and a ``last`` column that takes the rest of the width and folds."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        expand=True,
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for column in columns:
        table.add_column(column, justify="left" if column in text else "right", no_wrap=True)
    table.add_column(last, overflow="fold", ratio=1)
    return table


def render_header(status: dict[str, Any], rates: Rates, source: str = "") -> Panel:
    """The supervisor's line (pid, state, uptime, CPU, memory, fds, threads), the calls' line (tools,
    calls answered, calls/s, queued calls), one line per runtime: ready, or why not (the failure
    reason of a failed runtime is shown whole), and the task queue's line (``render_queue``)."""
    me = status.get("supervisor", {})
    state = str(me.get("state", "?"))
    line = Text()
    line.append("supervisor ", style="bold")
    line.append(f"pid {_value(me.get('pid'))}  ")
    line.append(state, style="green" if state == "running" else "bold yellow")
    line.append(
        f"  up {format_duration(me.get('uptime_seconds'))}"
        f"  cpu {format_number(me.get('cpu_percent'))}%"
        f"  mem {format_mb(me.get('rss_bytes'))} MB"
        f"  fds {_value(me.get('open_fds'))}  threads {_value(me.get('threads'))}"
    )
    calls = Text(
        f"tools {_value(me.get('tools'))}  calls {_value(me.get('calls'))}"
        f"  calls/s {format_number(rates.total)}  queued {_value(me.get('queued_calls'))}"
    )
    lines: list[RenderableType] = [line, calls]
    for runtime, info in (status.get("runtimes") or {}).items():
        runtime_line = Text(f"{runtime:<8} ")
        if info.get("ready"):
            runtime_line.append("ready", style="green")
        else:
            runtime_line.append("NOT READY", style="bold red")
            runtime_line.append(f": {info.get('failure') or 'no worker is ready yet'}")
        lines.append(runtime_line)
    queue = render_queue(status.get("task_queue"))
    if queue is not None:
        lines.append(queue)
    title = "mcp-supervisor top" + (f" · {source}" if source else "")
    subtitle = None if rates.elapsed is None else f"rates over {rates.elapsed:.1f} s"
    return Panel(Group(*lines), title=title, title_align="left", subtitle=subtitle, subtitle_align="right")


QUEUE_STATUSES = ("queued", "running", "input_required")


def render_queue(queue: dict[str, Any] | None) -> Text | None:
    """The task queue's line, or ``None`` without a task queue: its unfinished tasks by status, with how
    many are MCP tasks (``input_required`` ones always are), the tasks ended since it started (``done``,
    and the failed ones among them), and ``PAUSED`` with the reason. When the last answer could not be
    had, the error, and how old the figures shown are."""
    if queue is None:
        return None
    line = Text("queue    ")
    tasks: dict[str, dict[str, int]] | None = queue.get("tasks")
    error = queue.get("error")
    if tasks is None:
        line.append("UNAVAILABLE", style="bold red")
        line.append(f": {error or 'no answer yet'}")
        return line
    parts = []
    for status in QUEUE_STATUSES:
        origins = tasks.get(status) or {}
        mcp, total = int(origins.get("mcp") or 0), sum(int(n or 0) for n in origins.values())
        part = Text(f"{status} {total}", style="yellow" if status == "input_required" and total else "")
        if mcp and status != "input_required":
            part.append(f" (mcp {mcp})")
        parts.append(part)
    finished: dict[str, dict[str, int]] = queue.get("finished") or {}
    done = sum(int(n or 0) for origins in finished.values() for n in (origins or {}).values())
    failed = sum(int(n or 0) for n in (finished.get("failed") or {}).values())
    parts.append(Text(f"done {done}"))
    if failed:
        parts.append(Text(f"failed {failed}", style="red"))
    line.append(Text("  ").join(parts))
    if queue.get("paused"):
        line.append("  PAUSED", style="bold yellow")
        if queue.get("pause_reason"):
            line.append(f": {queue['pause_reason']}")
    if error:
        line.append(f"  (as of {format_duration(queue.get('as_of'))} ago: {error})", style="red")
    return line


def render_workers(status: dict[str, Any], rates: Rates) -> RenderableType:
    """One row per worker (current, candidate and retiring ones), in the order of the document:
    id, runtime, pid, state, cores, CPU %, memory MB, fds, threads, in flight, served, failed, calls/s,
    restarts, uptime and the last exit; in a terminal too narrow for all of them, the columns of
    ``WORKER_COLUMNS_DROPPED_FIRST`` are left out in that order until the others fit."""
    rows: list[list[str | Text]] = []
    for worker in status.get("workers", []):
        rows.append([
            str(worker.get("id")),
            str(worker.get("runtime")),
            _value(worker.get("pid")),
            _state(worker),
            format_cores(worker.get("cpu_affinity")),
            format_number(worker.get("cpu_percent")),
            format_mb(worker.get("rss_bytes")),
            _value(worker.get("open_fds")),
            _value(worker.get("threads")),
            _value(worker.get("in_flight")),
            _value(worker.get("calls_served")),
            _count_of_errors(int(worker.get("calls_failed") or 0)),
            format_number(rates.workers.get(worker_key(worker))),
            _value(worker.get("restarts")),
            format_duration(worker.get("uptime_seconds")) if worker.get("pid") is not None else "-",
            Text(str(worker.get("last_exit") or ""), style="dim"),
        ])  # fmt: skip
    return _FittedTable(
        "workers", WORKER_COLUMNS, WORKER_COLUMNS_DROPPED_FIRST, rows, "no workers",
        text={"ID", "RUNTIME", "STATE"}, last="LAST EXIT",
    )  # fmt: skip


UNBOUNDED = 100_000
"""A width no terminal has: what a table measures in it is the width it takes uncut."""


class _FittedTable:
    """A ``_table`` that keeps the columns that fit the width it is drawn in, leaving out those of
    ``dropped_first`` in that order while they do not; each row has a cell per column and one for ``last``."""

    def __init__(
        self,
        title: str,
        columns: Sequence[str],
        dropped_first: Sequence[str],
        rows: list[list[str | Text]],
        caption: str,
        *,
        text: Collection[str],
        last: str,
    ) -> None:
        self.title, self.columns, self.dropped_first = title, list(columns), dropped_first
        self.rows, self.caption, self.text, self.last = rows, caption, text, last

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        kept = list(range(len(self.columns)))
        for name in self.dropped_first:
            # the width the kept columns take uncut, with the folding last one reduced to its header
            probe = self._table(kept, last_cells=False)
            if Measurement.get(console, options.update_width(UNBOUNDED), probe).maximum <= options.max_width:
                break
            kept.remove(self.columns.index(name))
        yield self._table(kept)

    def _table(self, kept: list[int], last_cells: bool = True) -> Table:
        table = _table(self.title, [self.columns[index] for index in kept], self.text, self.last)
        for row in self.rows:
            table.add_row(*(row[index] for index in kept), row[-1] if last_cells else "")
        if not self.rows:
            table.caption = self.caption
        return table


def render_remote_workers(status: dict[str, Any]) -> Table | None:
    """One row per worker of a remote node (docs/scaling.md), by node: id, node, pool, its pid on that
    node's host, state, in flight, served, failed and its tools; ``None`` when no node is connected."""
    remote = status.get("remote_workers") or []
    if not remote:
        return None
    table = _table("remote workers", REMOTE_COLUMNS, text={"ID", "NODE", "POOL", "STATE"}, last="TOOLS")
    for worker in remote:
        table.add_row(
            str(worker.get("id")),
            str(worker.get("node")),
            str(worker.get("pool")),
            _value(worker.get("pid")),
            _state(worker),
            _value(worker.get("in_flight")),
            _value(worker.get("calls_served")),
            _count_of_errors(int(worker.get("calls_failed") or 0)),
            Text(" ".join(str(tool) for tool in worker.get("tools") or []), style="dim"),
        )
    return table


def render_tools(status: dict[str, Any], rates: Rates) -> Table:
    """One row per tool that has answered at least one call, busiest first (calls/s, then calls, then
    name): tool, runtime, calls, calls/s, p50 and p99 latency in ms, and errors (every outcome other than
    ``ok``, with the outcomes named)."""
    table = _table("tools", TOOL_COLUMNS, text={"TOOL", "RUNTIME"}, last="OUTCOMES")
    rows = []
    for key, figures in tool_entries(status):
        rate = rates.tools.get(key)
        rows.append((-(rate or 0.0), -int(figures.get("calls") or 0), key, figures, rate))
    rows.sort(key=lambda row: (row[0], row[1], row[2][1], row[2][0]))
    for _, _, (runtime, name), figures, rate in rows:
        outcomes: dict[str, int] = figures.get("outcomes") or {}
        errors = sum(count for outcome, count in outcomes.items() if outcome != "ok")
        table.add_row(
            name,
            runtime,
            _value(figures.get("calls")),
            format_number(rate),
            format_ms(figures.get("p50_ms")),
            format_ms(figures.get("p99_ms")),
            _count_of_errors(errors),
            Text(
                " ".join(f"{outcome}={count}" for outcome, count in sorted(outcomes.items()) if count),
                style="dim",
            ),
        )
    if not rows:
        table.caption = "no tool calls yet"
    return table


def render_quarantined(status: dict[str, Any]) -> RenderableType | None:
    """The quarantined tools, one line each (tool, pool, deaths, time left), or ``None`` when none is."""
    entries = status.get("quarantined") or []
    if not entries:
        return None
    text = Text()
    for index, entry in enumerate(entries):
        if index:
            text.append("\n")
        text.append(str(entry.get("tool")), style="bold")
        text.append(
            f" ({entry.get('pool')}, worker deaths {_value(entry.get('deaths'))}):"
            f" tried again in {format_duration(entry.get('retry_in_seconds'))}"
        )
    return Panel(text, title="quarantined tools", title_align="left", border_style="red")


def render_load_errors(status: dict[str, Any]) -> RenderableType | None:
    """The tool modules that failed to import, one line each, or ``None`` when there are none."""
    errors = status.get("load_errors") or []
    if not errors:
        return None
    text = Text()
    for index, error in enumerate(errors):
        if index:
            text.append("\n")
        text.append(str(error))
    return Panel(text, title="load errors", title_align="left", border_style="red")


def render_frame(
    current: dict[str, Any], previous: dict[str, Any] | None = None, source: str = ""
) -> RenderableType:
    """One whole frame for ``current``, with rates against ``previous`` (``-`` without one): header,
    workers, remote workers if any, tools and, if any, quarantined tools and load errors."""
    rates = compute_rates(previous, current)
    parts: list[RenderableType] = [render_header(current, rates, source), render_workers(current, rates)]
    remote = render_remote_workers(current)
    if remote is not None:
        parts += [Text(""), remote]
    parts += [Text(""), render_tools(current, rates)]
    for extra in (render_quarantined(current), render_load_errors(current)):
        if extra is not None:
            parts += [Text(""), extra]
    return Group(*parts)
