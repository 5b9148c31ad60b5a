"""``python -m supervisor top``: a live terminal view of a running supervisor, in the spirit of htop.

It asks the control socket for the status document (the same one as ``/status`` and ``ctl status``)
every ``--interval`` seconds and draws a header (the supervisor process, calls, runtimes), a workers
table, a tools table and the tool modules' load errors. Rates (calls/s) are the difference between two
consecutive status documents divided by the time between them, measured on the supervisor's own
monotonic clock (``uptime_seconds``), so they do not depend on how fast this program polls.

``--once`` prints one frame to stdout and exits: two samples ``--interval`` apart, so that the frame has
rates. ``q`` (on a terminal) or Ctrl-C leaves the live view; any other key redraws at once. Without a
terminal on stdout, a frame is printed every interval instead (like ``top -b``).

Exit codes: 0 done; 1 the supervisor answered with an error; 2 usage; 3 no supervisor is listening
there (or it stopped answering).

Everything that turns status documents into pictures is a pure function (``compute_rates``,
``render_header``, ``render_workers``, ``render_tools``, ``render_load_errors``, ``render_frame``), so it
is tested without a terminal and without a supervisor.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .control import request
from .ctl import add_target_options, control_path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0
ANSWER_TIMEOUT = 5.0
"""Longest wait for one status answer; a supervisor silent for longer counts as unreachable."""
ONCE_WIDTH = 160
"""Width of frames written to something that is not a terminal (unless ``$COLUMNS`` says otherwise)."""

STATE_STYLES = {
    "ready": "green",
    "starting": "cyan",
    "draining": "yellow",
    "backoff": "yellow",
    "failed": "bold red",
    "stopped": "dim",
}

WorkerKey = tuple[str, int | None]
"""A worker is (id, pid): during a reload a candidate and a retiring worker share an id."""
ToolKey = tuple[str, str]
"""A tool is (runtime, name)."""


class Unreachable(Exception):
    """No supervisor answered at the control socket; the message is the one line the operator sees."""


class Refused(Exception):
    """The supervisor answered ``{"ok": false}``; the message is its one-line error."""


# -- rates ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """Calls per second between two status documents; ``None`` where there is nothing to compare
    (the first frame, a worker or tool that appeared in between, a supervisor that restarted)."""

    elapsed: float | None = None
    total: float | None = None
    workers: dict[WorkerKey, float | None] = field(default_factory=dict)
    tools: dict[ToolKey, float | None] = field(default_factory=dict)


def elapsed_between(previous: dict[str, Any] | None, current: dict[str, Any]) -> float | None:
    """Seconds between two status documents of the same supervisor process, from its own uptime;
    ``None`` without a previous document, when the pid differs, or when time did not advance."""
    if previous is None:
        return None
    before, now = previous.get("supervisor", {}), current.get("supervisor", {})
    if before.get("pid") != now.get("pid"):
        return None
    try:
        seconds = float(now["uptime_seconds"]) - float(before["uptime_seconds"])
    except (KeyError, TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def per_second(before: int | None, after: int | None, elapsed: float | None) -> float | None:
    """``(after - before) / elapsed``; ``None`` when a figure is missing or the counter went backwards
    (a counter that restarted from zero has no meaningful difference)."""
    if before is None or after is None or elapsed is None or elapsed <= 0 or after < before:
        return None
    return (after - before) / elapsed


def _worker_key(worker: dict[str, Any]) -> WorkerKey:
    """(id, pid) of a worker entry."""
    return (str(worker.get("id")), worker.get("pid"))


def _worker_answered(worker: dict[str, Any]) -> int:
    """Calls the worker's current process answered: served + failed."""
    return int(worker.get("calls_served") or 0) + int(worker.get("calls_failed") or 0)


def _tool_entries(status: dict[str, Any]) -> Iterator[tuple[ToolKey, dict[str, Any]]]:
    """Every ((runtime, tool), figures) of the document's ``tools``."""
    for runtime, tools in (status.get("tools") or {}).items():
        for name, figures in tools.items():
            yield (runtime, name), figures


def compute_rates(previous: dict[str, Any] | None, current: dict[str, Any]) -> Rates:
    """The calls/s of the supervisor (all calls answered), of each worker (served + failed; only for a
    worker whose id *and* pid were in both documents) and of each tool, between ``previous`` and
    ``current``. Never raises on a well-formed status document; a missing figure gives ``None``."""
    elapsed = elapsed_between(previous, current)
    if previous is None or elapsed is None:
        return Rates(
            workers={_worker_key(w): None for w in current.get("workers", [])},
            tools={key: None for key, _ in _tool_entries(current)},
        )
    total = per_second(previous["supervisor"].get("calls"), current["supervisor"].get("calls"), elapsed)
    before_workers = {
        _worker_key(w): _worker_answered(w) for w in previous.get("workers", []) if w.get("pid") is not None
    }
    workers: dict[WorkerKey, float | None] = {}
    for worker in current.get("workers", []):
        key = _worker_key(worker)
        workers[key] = per_second(before_workers.get(key), _worker_answered(worker), elapsed)
    before_tools = {key: figures.get("calls") for key, figures in _tool_entries(previous)}
    tools: dict[ToolKey, float | None] = {}
    for tool_key, figures in _tool_entries(current):
        # A tool first called between the two documents had 0 calls in the previous one.
        tools[tool_key] = per_second(before_tools.get(tool_key, 0), figures.get("calls"), elapsed)
    return Rates(elapsed=elapsed, total=total, workers=workers, tools=tools)


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


# -- rendering -----------------------------------------------------------------------------------------


def render_header(status: dict[str, Any], rates: Rates, source: str = "") -> Panel:
    """The supervisor's line (pid, state, uptime, CPU, memory, fds, threads), the calls' line (tools,
    calls answered, calls/s, queued calls) and one line per runtime: ready, or why not (the failure
    reason of a failed runtime is shown whole)."""
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
    title = "mcp-supervisor top" + (f" · {source}" if source else "")
    subtitle = None if rates.elapsed is None else f"rates over {rates.elapsed:.1f} s"
    return Panel(Group(*lines), title=title, title_align="left", subtitle=subtitle, subtitle_align="right")


def render_workers(status: dict[str, Any], rates: Rates) -> Table:
    """One row per worker (current, candidate and retiring ones), in the order of the document:
    id, runtime, pid, state, cores, CPU %, memory MB, fds, threads, in flight, served, failed, calls/s,
    restarts, uptime and the last exit."""
    table = Table(
        title="workers",
        title_justify="left",
        title_style="bold",
        expand=True,
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("ID", no_wrap=True)
    table.add_column("RUNTIME", no_wrap=True)
    table.add_column("PID", justify="right", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("CORE", justify="right", no_wrap=True)
    table.add_column("CPU%", justify="right", no_wrap=True)
    table.add_column("MEM MB", justify="right", no_wrap=True)
    table.add_column("FDS", justify="right", no_wrap=True)
    table.add_column("THR", justify="right", no_wrap=True)
    table.add_column("INFL", justify="right", no_wrap=True)
    table.add_column("SERVED", justify="right", no_wrap=True)
    table.add_column("FAILED", justify="right", no_wrap=True)
    table.add_column("CALLS/S", justify="right", no_wrap=True)
    table.add_column("RESTARTS", justify="right", no_wrap=True)
    table.add_column("UP", justify="right", no_wrap=True)
    table.add_column("LAST EXIT", overflow="fold", ratio=1)
    for worker in status.get("workers", []):
        state = str(worker.get("state", "?"))
        failed = int(worker.get("calls_failed") or 0)
        table.add_row(
            str(worker.get("id")),
            str(worker.get("runtime")),
            _value(worker.get("pid")),
            Text(state, style=STATE_STYLES.get(state, "")),
            format_cores(worker.get("cpu_affinity")),
            format_number(worker.get("cpu_percent")),
            format_mb(worker.get("rss_bytes")),
            _value(worker.get("open_fds")),
            _value(worker.get("threads")),
            _value(worker.get("in_flight")),
            _value(worker.get("calls_served")),
            Text(str(failed), style="red" if failed else ""),
            format_number(rates.workers.get(_worker_key(worker))),
            _value(worker.get("restarts")),
            format_duration(worker.get("uptime_seconds")) if worker.get("pid") is not None else "-",
            Text(str(worker.get("last_exit") or ""), style="dim"),
        )
    if not status.get("workers"):
        table.caption = "no workers"
    return table


def render_tools(status: dict[str, Any], rates: Rates) -> Table:
    """One row per tool that has answered at least one call, busiest first (calls/s, then calls, then
    name): tool, runtime, calls, calls/s, p50 and p99 latency in ms, and errors (every outcome other than
    ``ok``, with the outcomes named)."""
    table = Table(
        title="tools",
        title_justify="left",
        title_style="bold",
        expand=True,
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("TOOL", no_wrap=True)
    table.add_column("RUNTIME", no_wrap=True)
    table.add_column("CALLS", justify="right", no_wrap=True)
    table.add_column("CALLS/S", justify="right", no_wrap=True)
    table.add_column("P50 MS", justify="right", no_wrap=True)
    table.add_column("P99 MS", justify="right", no_wrap=True)
    table.add_column("ERRORS", justify="right", no_wrap=True)
    table.add_column("OUTCOMES", overflow="fold", ratio=1)
    rows = []
    for key, figures in _tool_entries(status):
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
            Text(str(errors), style="red" if errors else ""),
            Text(
                " ".join(f"{outcome}={count}" for outcome, count in sorted(outcomes.items()) if count),
                style="dim",
            ),
        )
    if not rows:
        table.caption = "no tool calls yet"
    return table


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
    workers, tools and, if any, load errors."""
    rates = compute_rates(previous, current)
    parts: list[RenderableType] = [
        render_header(current, rates, source),
        render_workers(current, rates),
        Text(""),
        render_tools(current, rates),
    ]
    errors = render_load_errors(current)
    if errors is not None:
        parts += [Text(""), errors]
    return Group(*parts)


# -- the program ---------------------------------------------------------------------------------------


def fetch_status(path: Path, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
    """The status document from the control socket at ``path``.

    Raises:
        Unreachable: nothing listens there, or the supervisor did not answer within ``timeout``.
        Refused: the supervisor answered with an error.
    """
    try:
        answer = request(path, {"command": "status"}, timeout=timeout)
    except TimeoutError:
        raise Unreachable(f"the supervisor at {path} did not answer within {timeout:g} s") from None
    except ConnectionError as exc:  # nothing listens there, or it hung up
        raise Unreachable(str(exc)) from None
    except OSError as exc:  # e.g. permission denied: the socket belongs to another user
        raise Unreachable(f"cannot reach a supervisor at {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # an answer that is not JSON
        raise Unreachable(f"the supervisor at {path} gave an unreadable answer: {exc}") from None
    if not answer.get("ok"):
        raise Refused(str(answer.get("error")))
    result: dict[str, Any] = answer["result"]
    return result


def _interval(text: str) -> float:
    """``--interval``: seconds from ``MIN_INTERVAL`` to ``MAX_INTERVAL``, else a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise argparse.ArgumentTypeError(f"must be from {MIN_INTERVAL:g} to {MAX_INTERVAL:g} seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``top``: ``--port`` / ``--runtime-dir``, ``--interval``, ``--once``."""
    parser = argparse.ArgumentParser(
        prog="python -m supervisor top",
        description="Watch a running supervisor: its workers, their resources, calls and latencies. "
        "Press q or Ctrl-C to leave.",
    )
    add_target_options(parser)
    parser.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (default 1)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="print one frame (rates from two samples one interval apart) and exit",
    )
    return parser


def main(argv: list[str]) -> int:
    """Run ``top``; returns the exit code (0 done or interrupted, 1 refused, 2 usage, 3 unreachable)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    path = control_path(args)
    try:
        if args.once:
            return _once(path, args.interval)
        return _live(path, args.interval)
    except KeyboardInterrupt:
        return EXIT_OK
    except Unreachable as exc:
        print(f"mcp-supervisor top: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Refused as exc:
        print(f"mcp-supervisor top: status failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _console() -> Console:
    """A console on stdout: the terminal's width on a terminal, else ``$COLUMNS`` or ``ONCE_WIDTH``
    (and no colours, which rich decides by itself)."""
    width = None if sys.stdout.isatty() else shutil.get_terminal_size((ONCE_WIDTH, 24)).columns
    return Console(width=width)


def _once(path: Path, interval: float) -> int:
    """Print one frame with rates from two samples ``interval`` seconds apart; returns 0.

    Raises:
        Unreachable, Refused: as ``fetch_status``.
    """
    first = fetch_status(path)
    time.sleep(interval)
    second = fetch_status(path)
    _console().print(render_frame(second, first, str(path)))
    return EXIT_OK


def _live(path: Path, interval: float) -> int:
    """Redraw a full-screen frame every ``interval`` seconds until ``q`` (returns 0) or Ctrl-C
    (``KeyboardInterrupt`` propagates; the terminal is restored either way). Any other key redraws at
    once. When stdout is not a terminal, prints one frame per interval instead, like ``top -b``.

    Raises:
        Unreachable, Refused: as ``fetch_status``, also when the supervisor goes away mid-way.
    """
    console = _console()
    previous: dict[str, Any] | None = None
    current = fetch_status(path)
    if not console.is_terminal:
        while True:
            console.print(render_frame(current, previous, str(path)))
            console.file.flush()
            time.sleep(interval)
            previous, current = current, fetch_status(path)
    with (
        _keys() as keys,
        Live(
            render_frame(current, None, str(path)), console=console, screen=True, auto_refresh=False
        ) as live,
    ):
        while True:
            if keys.wait(interval) in ("q", "Q"):
                return EXIT_OK
            previous, current = current, fetch_status(path)
            live.update(render_frame(current, previous, str(path)), refresh=True)


class _KeyReader:
    """Waits for a key press on a terminal's stdin (in cbreak mode), or just sleeps without one."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def wait(self, seconds: float) -> str | None:
        """Sleep up to ``seconds``; returns the key pressed in the meantime, if any."""
        if self.fd is None:
            time.sleep(seconds)
            return None
        readable, _, _ = select.select([self.fd], [], [], seconds)
        if not readable:
            return None
        data = os.read(self.fd, 32)
        return data.decode(errors="replace")[-1:] if data else None


@contextlib.contextmanager
def _keys() -> Iterator[_KeyReader]:
    """A ``_KeyReader`` on stdin when it is a terminal, restoring the terminal's mode on the way out."""
    if not sys.stdin.isatty():
        yield _KeyReader(None)
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)  # keys arrive one by one, unechoed; Ctrl-C still raises KeyboardInterrupt
        yield _KeyReader(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
