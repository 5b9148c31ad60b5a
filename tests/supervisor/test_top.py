"""``python -m supervisor top``: the rates (``top_rates``) and the rendering (``top_render``) on hand-made
status documents, and the program (``top``) against a real supervisor (and against nothing)."""

from __future__ import annotations

import copy
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from shared.exits import EXIT_UNREACHABLE
from supervisor import top, top_rates, top_render
from tests.conftest import REPO, free_port, spawn_supervisor

TOP_DEADLINE = 30.0


def worker(worker_id: str, pid: int | None, **figures: Any) -> dict[str, Any]:
    runtime = worker_id.split("-")[0]
    document: dict[str, Any] = {
        "id": worker_id,
        "runtime": runtime,
        "pid": pid,
        "state": "ready",
        "uptime_seconds": 61.0,
        "restarts": 0,
        "last_exit": None,
        "cpu_affinity": [0],
        "cpu_percent": 12.5,
        "rss_bytes": 42 * 1048576,
        "open_fds": 24,
        "threads": 3,
        "in_flight": 0,
        "calls_served": 0,
        "calls_failed": 0,
        "tools": [],
    }
    document.update(figures)
    return document


def status(
    *,
    pid: int = 1000,
    uptime: float = 100.0,
    calls: int = 0,
    workers: list[dict[str, Any]] | None = None,
    tools: dict[str, dict[str, Any]] | None = None,
    runtimes: dict[str, Any] | None = None,
    load_errors: list[str] | None = None,
    task_queue: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A status document shaped like ``supervisor/status.py``'s."""
    return {
        "supervisor": {
            "pid": pid,
            "uptime_seconds": uptime,
            "state": "running",
            "cpu_percent": 3.0,
            "rss_bytes": 80 * 1048576,
            "open_fds": 31,
            "threads": 4,
            "tools": 6,
            "calls": calls,
            "queued_calls": 0,
        },
        "runtimes": runtimes
        if runtimes is not None
        else {"asyncio": {"ready": True, "failure": None}, "trio": {"ready": True, "failure": None}},
        "load_errors": load_errors or [],
        "workers": workers
        if workers is not None
        else [worker("asyncio-0", 2001), worker("trio-0", 2002, cpu_affinity=[1])],
        "tools": tools or {},
        "task_queue": task_queue,
    }


def tool(calls: int, errors: int = 0, p50: float | None = 0.5, p99: float | None = 2.0) -> dict[str, Any]:
    outcomes = {"ok": calls - errors}
    if errors:
        outcomes["tool_error"] = errors
    return {"calls": calls, "outcomes": outcomes, "p50_ms": p50, "p90_ms": p99, "p99_ms": p99}


def text_of(renderable: Any) -> str:
    console = Console(record=True, width=160)
    console.print(renderable)
    return console.export_text()


def cells(line: str) -> list[str]:
    """The cells of a table line: the tables have no vertical rules, cells are two or more spaces apart
    (a cell never holds two spaces in a row; an empty last cell is simply absent)."""
    return re.split(r"\s{2,}", line.strip())


def rows_of(text: str, first: str) -> list[list[str]]:
    return [cells(line) for line in text.splitlines() if cells(line)[0] == first]


def row(text: str, first: str) -> list[str]:
    """The cells of the one table row whose first cell is ``first``."""
    rows = rows_of(text, first)
    assert len(rows) == 1, f"expected one row starting with {first!r} in:\n{text}"
    return rows[0]


# -- rates -------------------------------------------------------------------------------------------


def two_samples() -> tuple[dict[str, Any], dict[str, Any]]:
    before = status(
        uptime=100.0,
        calls=100,
        workers=[
            worker("asyncio-0", 2001, calls_served=40, calls_failed=10),
            worker("trio-0", 2002, calls_served=50),
        ],
        tools={"asyncio": {"echo": tool(30), "sleep": tool(20, errors=2)}, "trio": {"whoami_trio": tool(50)}},
    )
    after = status(
        uptime=102.0,
        calls=250,
        workers=[
            worker("asyncio-0", 2001, calls_served=100, calls_failed=20),
            worker("trio-0", 2002, calls_served=130),
        ],
        tools={
            "asyncio": {"echo": tool(90), "sleep": tool(30, errors=3)},
            "trio": {"whoami_trio": tool(130)},
        },
    )
    return before, after


def test_rates_are_the_difference_of_two_samples_over_the_supervisors_own_clock() -> None:
    before, after = two_samples()
    rates = top_rates.compute_rates(before, after)
    assert rates.elapsed == 2.0
    assert rates.total == 75.0  # (250 - 100) / 2
    assert rates.workers == {("asyncio-0", 2001): 35.0, ("trio-0", 2002): 40.0}  # served + failed
    assert rates.tools == {
        ("asyncio", "echo"): 30.0,
        ("asyncio", "sleep"): 5.0,
        ("trio", "whoami_trio"): 40.0,
    }


def test_the_frame_shows_the_rates_of_the_supervisor_each_worker_and_each_tool() -> None:
    before, after = two_samples()
    text = text_of(top_render.render_frame(after, before))
    assert "calls 250  calls/s 75.0" in text
    asyncio_row = row(text, "asyncio-0")
    assert asyncio_row[:4] == ["asyncio-0", "asyncio", "2001", "ready"]
    assert asyncio_row[10:13] == ["100", "20", "35.0"]  # served, failed, calls/s
    assert row(text, "trio-0")[12] == "40.0"
    assert row(text, "whoami_trio")[:4] == ["whoami_trio", "trio", "130", "40.0"]
    sleep_row = row(text, "sleep")
    assert sleep_row[3] == "5.0" and sleep_row[6] == "3"  # calls/s, errors
    assert "rates over 2.0 s" in text


def test_the_first_frame_has_no_rates_yet() -> None:
    _, after = two_samples()
    text = text_of(top_render.render_frame(after))
    assert "calls/s -" in text
    assert row(text, "asyncio-0")[12] == "-"
    assert row(text, "echo")[3] == "-"
    assert "rates over" not in text


def test_a_worker_that_was_replaced_between_samples_has_no_rate() -> None:
    before, after = two_samples()
    after["workers"][1] = worker("trio-0", 3003, calls_served=5, restarts=1, last_exit="killed by SIGKILL")
    rates = top_rates.compute_rates(before, after)
    assert rates.workers[("trio-0", 3003)] is None  # its counters started over with the new process
    assert rates.workers[("asyncio-0", 2001)] == 35.0
    shown = row(text_of(top_render.render_frame(after, before)), "trio-0")
    assert shown[2] == "3003" and shown[12] == "-" and shown[13] == "1" and shown[15] == "killed by SIGKILL"


def test_a_restarted_supervisor_gives_no_rates() -> None:
    before, after = two_samples()
    after["supervisor"]["pid"] = 4242
    rates = top_rates.compute_rates(before, after)
    assert rates.elapsed is None and rates.total is None
    assert set(rates.workers.values()) == {None} and set(rates.tools.values()) == {None}


def test_a_tool_first_called_between_samples_counts_from_zero() -> None:
    before, after = two_samples()
    after["tools"]["trio"]["trio_sleep"] = tool(8)
    assert top_rates.compute_rates(before, after).tools[("trio", "trio_sleep")] == 4.0


def test_the_same_worker_id_twice_during_a_reload_gives_two_rows_with_their_own_rates() -> None:
    before = status(
        uptime=10.0,
        workers=[worker("trio-0", 2002, calls_served=10), worker("trio-0", 3003, state="starting")],
    )
    after = status(
        uptime=11.0,
        workers=[
            worker("trio-0", 2002, state="draining", calls_served=12),
            worker("trio-0", 3003, calls_served=7),
        ],
    )
    rates = top_rates.compute_rates(before, after)
    assert rates.workers == {("trio-0", 2002): 2.0, ("trio-0", 3003): 7.0}
    text = text_of(top_render.render_frame(after, before))
    assert [(r[2], r[3], r[12]) for r in rows_of(text, "trio-0")] == [
        ("2002", "draining", "2.0"),
        ("3003", "ready", "7.0"),
    ]


# -- what the frame shows ----------------------------------------------------------------------------


def test_every_worker_id_and_state_appears() -> None:
    document = status(
        workers=[
            worker("asyncio-0", 2001),
            worker("asyncio-1", None, state="backoff", restarts=3, last_exit="exit code 70 after 0.3 s"),
            worker("trio-0", None, state="failed", restarts=5, last_exit="exit code 70 after 0.2 s"),
            worker("trio-1", 2004, state="starting"),
        ]
    )
    text = text_of(top_render.render_frame(document))
    for worker_id, state in [
        ("asyncio-0", "ready"),
        ("asyncio-1", "backoff"),
        ("trio-0", "failed"),
        ("trio-1", "starting"),
    ]:
        assert row(text, worker_id)[3] == state
    assert row(text, "asyncio-1")[2] == "-"  # no process right now
    assert row(text, "trio-0")[15] == "exit code 70 after 0.2 s"


def test_a_failed_runtime_shows_its_reason_whole() -> None:
    reason = "runtime trio is unavailable: every trio worker is failing: exit code 70 after 0.3 s"
    document = status(
        runtimes={"asyncio": {"ready": True, "failure": None}, "trio": {"ready": False, "failure": reason}}
    )
    text = text_of(top_render.render_header(document, top_rates.Rates()))
    assert "asyncio  ready" in text
    assert f"trio     NOT READY: {reason}" in text


def test_a_runtime_still_starting_says_so() -> None:
    document = status(runtimes={"trio": {"ready": False, "failure": None}})
    assert "trio     NOT READY: no worker is ready yet" in text_of(
        top_render.render_header(document, top_rates.Rates())
    )


def task_queue(**fields: Any) -> dict[str, Any]:
    """A ``task_queue`` block shaped like ``QueueStatus.document``'s."""
    block: dict[str, Any] = {
        "paused": False,
        "pause_reason": None,
        "tasks": {
            "queued": {"mcp": 2, "queue": 1},
            "running": {"mcp": 5, "queue": 0},
            "input_required": {"mcp": 1, "queue": 0},
        },
        "finished": {
            "completed": {"mcp": 100, "queue": 20},
            "failed": {"mcp": 0, "queue": 0},
            "cancelled": {"mcp": 0, "queue": 0},
        },
        "workflows": {"pending": 0, "running": 0},
        "expired": 0,
        "as_of": 0.2,
        "error": None,
    }
    block.update(fields)
    return block


def queue_line(document: dict[str, Any]) -> list[str]:
    text = text_of(top_render.render_header(document, top_rates.Rates()))
    return [line.strip(" │") for line in text.splitlines() if line.strip(" │").startswith("queue ")]


def test_the_queue_line_counts_tasks_by_status_with_the_mcp_ones_and_says_paused() -> None:
    document = status(task_queue=task_queue(paused=True, pause_reason="disk maintenance"))
    assert queue_line(document) == [
        "queue    queued 3 (mcp 2)  running 5 (mcp 5)  input_required 1  done 120  PAUSED: disk maintenance"
    ]
    lines = text_of(top_render.render_header(document, top_rates.Rates())).splitlines()
    runtimes = [i for i, line in enumerate(lines) if "ready" in line]
    assert max(runtimes) < next(i for i, line in enumerate(lines) if "queue " in line)  # under the runtimes


def test_the_queue_line_shows_failures_and_a_pause_without_reason() -> None:
    finished = task_queue()["finished"] | {"failed": {"mcp": 2, "queue": 1}}
    tasks = {status: {"mcp": 0, "queue": 0} for status in ("queued", "running", "input_required")}
    document = status(task_queue=task_queue(tasks=tasks, finished=finished, paused=True))
    assert queue_line(document) == [
        "queue    queued 0  running 0  input_required 0  done 123  failed 3  PAUSED"
    ]


def test_a_queue_that_cannot_answer_says_why_and_how_old_its_figures_are() -> None:
    error = "no task queue worker is serving"
    never = task_queue(**dict.fromkeys(("paused", "tasks", "finished", "workflows", "expired", "as_of")))
    assert queue_line(status(task_queue=never | {"error": error})) == [f"queue    UNAVAILABLE: {error}"]
    assert queue_line(status(task_queue=never)) == ["queue    UNAVAILABLE: no answer yet"]
    stale = queue_line(status(task_queue=task_queue(as_of=75.0, error=error)))
    assert stale[0].endswith(f"done 120  (as of 1m15s ago: {error})")


def test_no_task_queue_no_queue_line() -> None:
    assert queue_line(status()) == []
    assert top_render.render_queue(None) is None


def test_load_errors_are_listed_and_absent_when_there_are_none() -> None:
    error = "tests.toolmods.broken_import: ModuleNotFoundError: No module named 'nope'"
    text = text_of(top_render.render_frame(status(load_errors=[error])))
    assert "load errors" in text and error in text
    assert top_render.render_load_errors(status()) is None
    assert "load errors" not in text_of(top_render.render_frame(status()))


def test_tools_are_listed_busiest_first_with_latencies_and_errors() -> None:
    document = status(
        tools={
            "asyncio": {"echo": tool(5, p50=0.42, p99=12.5), "sleep": tool(50, errors=7, p99=1503.0)},
            "trio": {"trio_sleep": tool(20, p50=None, p99=None)},
        }
    )
    text = text_of(top_render.render_tools(document, top_rates.compute_rates(None, document)))
    names = [cells(line)[0] for line in text.splitlines()[3:]]  # after the title, the header and the rule
    assert names == ["sleep", "trio_sleep", "echo"]
    assert row(text, "echo")[4:7] == ["0.42", "12.5", "0"]
    sleep_row = row(text, "sleep")
    assert sleep_row[5:8] == ["1503", "7", "ok=43 tool_error=7"]
    assert row(text, "trio_sleep")[4:6] == ["-", "-"]


def test_no_tool_calls_yet_is_said() -> None:
    assert "no tool calls yet" in text_of(top_render.render_tools(status(), top_rates.Rates()))


def test_figures_not_sampled_yet_render_as_dashes() -> None:
    document = status(
        workers=[
            worker(
                "asyncio-0",
                2001,
                cpu_percent=None,
                rss_bytes=None,
                open_fds=None,
                threads=None,
                cpu_affinity=None,
            )
        ]
    )
    document["supervisor"].update(cpu_percent=None, rss_bytes=None)
    text = text_of(top_render.render_frame(document))
    assert row(text, "asyncio-0")[4:9] == ["-", "-", "-", "-", "-"]
    assert "cpu -%  mem - MB" in text


def test_the_header_names_the_supervisor() -> None:
    text = text_of(
        top_render.render_header(status(pid=31337, uptime=3725.0), top_rates.Rates(), "/run/x/control.sock")
    )
    assert "supervisor pid 31337  running  up 1h02m" in text
    assert "mem 80.0 MB" in text
    assert "/run/x/control.sock" in text


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.4, "0s"), (59.9, "59s"), (61, "1m01s"), (3600, "1h00m"), (90061, "1d01h")],
)
def test_durations(seconds: float | None, shown: str) -> None:
    assert top_render.format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("cores", "shown"), [(None, "-"), ([], "-"), ([3], "3"), ([2, 0], "0,2"), ([3, 1, 2, 0], "0-3")]
)
def test_cores(cores: list[int] | None, shown: str) -> None:
    assert top_render.format_cores(cores) == shown


def test_a_counter_that_went_backwards_has_no_rate() -> None:
    assert top_rates.per_second(10, 4, 1.0) is None
    assert top_rates.per_second(None, 4, 1.0) is None
    assert top_rates.per_second(4, 10, 2.0) == 3.0


# -- the command line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["--interval", "0"], ["--interval", "soon"], ["--port", "1", "--runtime-dir", "/x"], ["--bogus"]]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert top.main(argv) == 2
    assert "usage: python -m supervisor top" in capsys.readouterr().err


def test_a_socket_nobody_listens_on_exits_6_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "control.sock"  # what a killed supervisor leaves behind
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))
    assert top.main(["--once", "--runtime-dir", str(tmp_path)]) == EXIT_UNREACHABLE == 6
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"mcp-supervisor top: no supervisor is listening at {stale}\n"


def run_top(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", "top", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TOP_DEADLINE,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_top_once_against_a_real_supervisor() -> None:
    running = spawn_supervisor()
    try:
        workers = {w["id"]: w["pid"] for w in running.status()["workers"]}
        result = run_top("--once", "--port", str(running.port), "--interval", "0.2")
    finally:
        code = running.stop()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"supervisor pid {running.pid}  running" in result.stdout
    for worker_id in ("asyncio-0", "trio-0"):
        shown = row(result.stdout, worker_id)
        assert shown[:4] == [worker_id, worker_id.split("-")[0], str(workers[worker_id]), "ready"]
        assert shown[12] != "-"  # a rate from two samples of the same process
    assert "asyncio  ready" in result.stdout and "trio     ready" in result.stdout
    assert code == 0


def test_top_once_with_nothing_listening_exits_6_with_one_line() -> None:
    port = free_port()
    result = run_top("--once", "--port", str(port))
    assert result.returncode == EXIT_UNREACHABLE
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcp-supervisor top: no supervisor is listening at ")
    assert f"http-{port}" in lines[0]


def test_copying_a_document_leaves_the_rates_pure() -> None:
    before, after = two_samples()
    snapshot = copy.deepcopy((before, after))
    top_render.render_frame(after, before)
    assert (before, after) == snapshot  # rendering never changes the documents it is given


def test_issue_17_quarantined_tools_are_listed_and_absent_when_there_are_none() -> None:
    document = status()
    document["quarantined"] = [
        {
            "tool": "crash",
            "pool": "asyncio",
            "deaths": 3,
            "since": 1.0,
            "until": 301.0,
            "retry_in_seconds": 125.0,
        }
    ]
    text = text_of(top_render.render_frame(document))
    assert "quarantined tools" in text
    assert "crash (asyncio, worker deaths 3): tried again in 2m05s" in text
    assert top_render.render_quarantined(status()) is None
    assert "quarantined tools" not in text_of(top_render.render_frame(status()))


def test_the_workers_of_remote_nodes_have_a_table_of_their_own_only_when_connected() -> None:
    document = status()
    document["remote_workers"] = [
        {
            "id": "node-a:trio-0",
            "node": "node-a",
            "pool": "trio",
            "pid": 4242,
            "state": "draining",
            "in_flight": 2,
            "calls_served": 17,
            "calls_failed": 1,
            "tools": ["remote_where", "remote_hold"],
        }
    ]
    text = text_of(top_render.render_frame(document))
    assert "remote workers" in text
    assert row(text, "node-a:trio-0") == [
        "node-a:trio-0", "node-a", "trio", "4242", "draining", "2", "17", "1", "remote_where remote_hold",
    ]  # fmt: skip
    assert top_render.render_remote_workers(status()) is None
    assert "remote workers" not in text_of(top_render.render_frame(status()))


@pytest.mark.parametrize("width", [80, 100, 120])
def test_a_narrow_terminal_leaves_columns_out_rather_than_cutting_the_ones_that_matter(width: int) -> None:
    document = status(
        workers=[
            worker("asyncio-spare-0", 1234567, calls_served=123456, in_flight=12, calls_failed=3),
            worker("trio-queue", 2345678, last_exit="killed by SIGKILL", restarts=4),
        ]
    )
    console = Console(record=True, width=width)
    console.print(top_render.render_workers(document, top_rates.compute_rates(None, document)))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    header = cells(next(line for line in text.splitlines() if line.strip().startswith("ID")))
    assert header[:2] == ["ID", "PID"] or header[:3] == ["ID", "RUNTIME", "PID"]
    spare = dict(zip(header, row(text, "asyncio-spare-0"), strict=False))
    assert (spare["PID"], spare["STATE"], spare["INFL"], spare["SERVED"], spare["FAILED"]) == (
        "1234567", "ready", "12", "123456", "3",
    )  # fmt: skip
    assert "killed by" in text and "SIGKILL" in text  # the last column folds
    wide = Console(record=True, width=160)
    wide.print(top_render.render_workers(document, top_rates.compute_rates(None, document)))
    wide_text = wide.export_text()
    assert all(name in wide_text for name in top_render.WORKER_COLUMNS)  # all of them when they fit
