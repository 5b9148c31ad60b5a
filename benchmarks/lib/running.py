"""How a benchmark script runs: from the repository root, logging into memory, on uvloop when it is
installed (as the supervisor does), SIGTERM treated like Ctrl-C, in a private temporary directory.

``python -m benchmarks.hop`` and ``python -m benchmarks`` both run this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

try:  # the supervisor runs on uvloop when it is installed; so do the benchmarks
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

HAVE_UVLOOP = uvloop is not None
REPO_ROOT = Path(__file__).resolve().parents[2]
"""The working directory of every benchmark and of its children (they import ``benchmarks.*`` from it)."""
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

T = TypeVar("T")


class Recorder(logging.Handler):
    """Keeps every log line of the run (worker output included) to show when something fails."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.lines[-lines:]) or "(no output)"


LOG = Recorder()
"""The log of this run; ``install_logging`` attaches it to the root logger."""


def install_logging() -> None:
    """INFO and above into ``LOG``, WARNING and above to stderr as well."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(LOG)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    stderr.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(stderr)


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end on a new event loop: uvloop's when it is installed."""
    factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


def cancel_on_sigterm() -> asyncio.Task[Any]:
    """Make SIGTERM cancel the current task, as Ctrl-C cancels the run; returns that task."""
    task = asyncio.current_task()
    assert task is not None, "called outside a task"
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return task


def loop_name() -> str:
    """``uvloop.Loop`` or ``asyncio.unix_events._UnixSelectorEventLoop``: what the figures were taken on."""
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


@contextlib.contextmanager
def private_dir(prefix: str) -> Iterator[Path]:
    """A new temporary directory only this user can enter (mode 0700), removed on the way out."""
    path = Path(tempfile.mkdtemp(prefix=prefix))  # mkdtemp makes it 0700
    path.chmod(0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
