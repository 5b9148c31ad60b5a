"""Unit tests of supervisor/ctl.py: the command line and the summary, with the control socket faked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from supervisor import ctl

STATUS: dict[str, Any] = {
    "supervisor": {
        "pid": 7, "state": "running", "uptime_seconds": 3.0, "tools": 4, "calls": 0, "rss_bytes": None
    },
    "runtimes": {"asyncio": {"ready": True, "failure": None}, "trio": {"ready": False, "failure": None}},
    "workers": [
        {
            "id": "asyncio-0", "pool": "asyncio", "pid": 11, "state": "ready", "in_flight": 0,
            "calls_served": 0, "calls_failed": 0, "restarts": 0, "last_exit": None,
        }
    ],
    "load_errors": [],
}  # fmt: skip


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, dict[str, Any]]]:
    """The control socket, faked: every request is recorded and answered with ``STATUS``."""
    sent: list[tuple[Path, dict[str, Any]]] = []

    def request(path: Path, command: dict[str, Any]) -> dict[str, Any]:
        sent.append((path, command))
        return {"ok": True, "result": STATUS}

    monkeypatch.setattr(ctl, "request", request)
    return sent


@pytest.mark.parametrize(
    "argv",
    [["--json", "status"], ["status", "--json"]],
    ids=["before", "after"],
)
def test_json_is_accepted_before_and_after_the_command_issue_17(
    argv: list[str], answered: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/observability.md shows ``ctl status --json``; it was a usage error (exit 2)."""
    assert ctl.main(argv) == ctl.EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"ok": True, "result": STATUS}


def test_the_target_may_follow_the_command(answered: list[tuple[Path, dict[str, Any]]]) -> None:
    assert ctl.main(["scale", "asyncio", "2", "--runtime-dir", "/somewhere"]) == ctl.EXIT_OK
    assert answered == [
        (Path("/somewhere/control.sock"), {"command": "scale", "runtime": "asyncio", "count": 2})
    ]


def test_an_option_before_the_command_is_not_overwritten_by_its_absence_after() -> None:
    args = ctl.build_parser().parse_args(["--json", "--port", "9000", "status"])
    assert (args.json, args.port, args.runtime_dir) == (True, 9000, None)


def test_a_pool_scaled_to_0_says_so_not_none_issue_17() -> None:
    """``ctl status`` printed ``trio: NOT READY: None`` for a pool scaled to 0."""
    text = ctl.render_status(STATUS)
    assert "  trio: scaled to 0" in text.splitlines()
    assert "None" not in text


def test_a_pool_without_a_ready_worker_says_why() -> None:
    starting = {**STATUS, "workers": [*STATUS["workers"], {**STATUS["workers"][0], "pool": "trio"}]}
    assert "  trio: NOT READY: no worker of it is ready yet" in ctl.render_status(starting).splitlines()
    failed = {**STATUS, "runtimes": {"trio": {"ready": False, "failure": "every trio worker is failing"}}}
    assert "  trio: NOT READY: every trio worker is failing" in ctl.render_status(failed).splitlines()


QUARANTINED = {
    "tool": "crash", "pool": "asyncio", "deaths": 3, "since": 1.0, "until": 301.0, "retry_in_seconds": 287.4
}  # fmt: skip


def test_issue_17_status_shows_a_quarantined_tool_and_how_to_release_it() -> None:
    text = ctl.render_status({**STATUS, "quarantined": [QUARANTINED]})
    assert (
        "  QUARANTINED crash (asyncio, worker deaths 3): tried again in 287 s "
        "(ctl release crash to lift it now)"
    ) in text.splitlines()
    assert "QUARANTINED" not in ctl.render_status({**STATUS, "quarantined": []})


def test_issue_17_release_sends_the_tool_and_a_refusal_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[dict[str, Any]] = []

    def request(path: Path, command: dict[str, Any]) -> dict[str, Any]:
        sent.append(command)
        if command["tool"] == "crash":
            return {"ok": True, "result": "tool 'crash' released"}
        return {"ok": False, "error": f"tool {command['tool']!r} is not quarantined"}

    monkeypatch.setattr(ctl, "request", request)
    assert ctl.main(["release", "crash"]) == ctl.EXIT_OK
    assert capsys.readouterr().out == "release: tool 'crash' released\n"
    assert ctl.main(["release", "echo"]) == ctl.EXIT_FAILED
    assert capsys.readouterr().err == ("mcp-supervisor ctl: release failed: tool 'echo' is not quarantined\n")
    assert sent == [{"command": "release", "tool": "crash"}, {"command": "release", "tool": "echo"}]
    assert ctl.main(["release"]) == ctl.EXIT_USAGE
