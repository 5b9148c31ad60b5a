"""``python -m supervisor top``: a live terminal view of a running supervisor, in the spirit of htop.

It asks the control socket for the status document (the same one as ``/status`` and ``ctl status``)
every ``--interval`` seconds and draws a header (the supervisor process, calls, runtimes), a workers
table, a tools table and the tool modules' load errors. Rates (calls/s) are the difference between two
consecutive status documents divided by the time between them, measured on the supervisor's own
monotonic clock (``uptime_seconds``), so they do not depend on how fast this program polls.

``--once`` prints one frame to stdout and exits: two samples ``--interval`` apart, so that the frame has
rates. ``q`` (on a terminal) or Ctrl-C leaves the live view; any other key redraws at once. Without a
terminal on stdout, a frame is printed every interval instead (like ``top -b``).

Exit codes (``shared.exits``): 0 done; 1 the supervisor answered with an error; 2 usage; 6 no supervisor
is listening there (or it stopped answering).

This module is the program: the control socket, the command line, the terminal. The rates are computed
in ``top_rates.py`` and the frames drawn in ``top_render.py``, both pure functions of status documents.
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
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from shared.exits import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE

from .control import request
from .ctl import add_target_options, control_path
from .top_render import render_frame

MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0
ANSWER_TIMEOUT = 5.0
"""Longest wait for one status answer; a supervisor silent for longer counts as unreachable."""
ONCE_WIDTH = 160
"""Width of frames written to something that is not a terminal (unless ``$COLUMNS`` says otherwise)."""


class Unreachable(Exception):
    """No supervisor answered at the control socket; the message is the one line the operator sees."""


class Refused(Exception):
    """The supervisor answered ``{"ok": false}``; the message is its one-line error."""


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
    """Run ``top``; returns the exit code (0 done or interrupted, 1 refused, 2 usage, 6 unreachable)."""
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
