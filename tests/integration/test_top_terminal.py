"""``python -m supervisor top`` as an operator sees it: the live view in a real terminal (a tmux pane), drawn
again as the supervisor changes underneath it, and left with ``q``.

tmux runs on a socket of the test's own (never the user's server); its server and the pane's process are
stopped by their pids at the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, RunningSupervisor, assert_gone
from tests.supervisor.test_top import cells, rows_of

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 160, 60
SCREEN_DEADLINE = 30.0


class Terminal:
    """A detached tmux session of ``WIDTH`` × ``HEIGHT`` running one command, on a private socket."""

    def __init__(self, socket: Path, command: list[str]) -> None:
        self.socket = socket
        self._tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", str(WIDTH), "-y", str(HEIGHT),
            "-c", str(REPO), subprocess.list2cmdline(command),
            ";", "set-option", "-t", "top", "remain-on-exit", "on",
        )  # fmt: skip
        self.server_pid = int(self._tmux("display-message", "-p", "-t", "top", "#{pid}"))
        self.pane_pid = int(self._tmux("display-message", "-p", "-t", "top", "#{pane_pid}"))

    def _tmux(self, *args: str) -> str:
        # the pane's programs get the server's environment: a COLUMNS or LINES there (pytest's process
        # may have them) would override the pane's real size
        env = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")}
        result = subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=10, check=True,
            env=env,
        )  # fmt: skip
        return result.stdout.strip()

    def screen(self) -> str:
        """What the pane shows now, as text."""
        return self._tmux("capture-pane", "-p", "-t", "top")

    def pane(self, variable: str) -> str:
        return self._tmux("display-message", "-p", "-t", "top", f"#{{{variable}}}")

    def resize(self, width: int) -> None:
        self._tmux("resize-window", "-t", "top", "-x", str(width), "-y", str(HEIGHT))

    def press(self, key: str) -> None:
        self._tmux("send-keys", "-t", "top", key)

    def wait_for(self, predicate: Callable[[str], Any], what: str) -> str:
        """The screen once ``predicate(screen)`` is true, polled until ``SCREEN_DEADLINE``."""
        deadline = time.monotonic() + SCREEN_DEADLINE
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"the terminal never showed {what}; it shows:\n{screen}")
            time.sleep(0.1)

    def close(self) -> None:
        """Stop the pane's process and the tmux server, by pid."""
        for pid in (self.pane_pid, self.server_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert_gone([self.pane_pid, self.server_pid])


@pytest.fixture
def supervisor(supervisor_factory: Any) -> RunningSupervisor:
    server: RunningSupervisor = supervisor_factory()
    return server


@pytest.fixture
def top(tmp_path: Path, supervisor: RunningSupervisor) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (.ci/run installs it)")
    command = [sys.executable, "-m", "supervisor", "top", "--port", str(supervisor.port), "--interval", "0.3"]
    terminal = Terminal(tmp_path / "tmux.sock", command)
    try:
        yield terminal
    finally:
        terminal.close()


def worker_table(screen: str) -> list[str] | None:
    """The workers table's lines, its header first, as the screen shows them (None before it is drawn)."""
    lines = screen.splitlines()
    starts = [index for index, line in enumerate(lines) if cells(line)[:2] == ["ID", "RUNTIME"] or
              cells(line)[:2] == ["ID", "PID"]]  # fmt: skip
    if not starts:
        return None
    table = [lines[starts[0]]]
    for line in lines[starts[0] + 2 :]:  # past the rule under the header
        if not line.strip():
            break
        table.append(line)
    return table


def worker_row(screen: str, worker_id: str) -> list[str] | None:
    rows = rows_of(screen, worker_id)
    return rows[0] if len(rows) == 1 else None


def test_the_live_view_follows_a_worker_replaced_under_it_and_q_leaves_it(
    supervisor: RunningSupervisor, top: Terminal
) -> None:
    pid = supervisor.worker("asyncio-0")["pid"]
    screen = top.wait_for(
        lambda s: (row := worker_row(s, "asyncio-0")) is not None and row[2:4] == [str(pid), "ready"],
        "asyncio-0 ready with its pid",
    )
    assert f"supervisor pid {supervisor.pid}  running" in screen
    assert (trio := worker_row(screen, "trio-0")) is not None and trio[2:4] == [
        str(supervisor.worker("trio-0")["pid"]),
        "ready",
    ]

    os.kill(pid, signal.SIGKILL)
    replaced = supervisor.wait_for(
        lambda: (
            (w := supervisor.worker("asyncio-0"))["pid"] not in (None, pid) and w["state"] == "ready" and w
        ),
        "asyncio-0 replaced",
    )
    # a frame may be drawn from a status taken while the new worker was still starting: wait for it ready
    screen = top.wait_for(
        lambda s: (
            (row := worker_row(s, "asyncio-0")) is not None
            and row[2:4] == [str(replaced["pid"]), "ready"]
            and row[13] == "1"
        ),  # RESTARTS: the kill counted
        "the new asyncio-0 ready, without a key pressed",
    )
    assert str(pid) not in [cell for r in rows_of(screen, "asyncio-0") for cell in r]

    top.resize(80)  # an operator's 80-column terminal: columns are left out, none is cut
    screen = top.wait_for(
        lambda s: (shown := worker_table(s)) is not None and "RUNTIME" not in shown[0],
        "the workers table redrawn for 80 columns",
    )
    table = worker_table(screen)
    assert table is not None and all("…" not in line and len(line) <= 80 for line in table)
    fields = dict(zip(cells(table[0]), rows_of("\n".join(table), "asyncio-0")[0], strict=False))
    assert (fields["PID"], fields["STATE"], fields["FAILED"]) == (str(replaced["pid"]), "ready", "0")

    top.press("q")
    deadline = time.monotonic() + SCREEN_DEADLINE
    while top.pane("pane_dead") != "1":
        assert time.monotonic() < deadline, f"top did not leave on q; it shows:\n{top.screen()}"
        time.sleep(0.1)
    assert top.pane("pane_dead_status") == "0"
