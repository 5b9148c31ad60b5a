"""The control socket (``control.py``), its client ``request``, the ``ctl`` command (``ctl.py``) and the
supervisor's commands (``Supervisor._control_handlers``), on a real unix socket served by this test's
event loop: no supervisor process.

The blocking client runs in a thread (``asyncio.to_thread``) so that the server keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor import ctl, scaling
from supervisor.app import Supervisor
from supervisor.config import Settings
from supervisor.control import MAX_LINE, CommandError, ControlServer, Handler, request
from supervisor.rundir import CONTROL_NAME

pytestmark = pytest.mark.anyio


@pytest.fixture
def directory() -> Iterator[Path]:
    """A private, short directory: pytest's tmp_path can exceed the 107 bytes of a unix socket path."""
    with tempfile.TemporaryDirectory(prefix="ctl-") as path:
        yield Path(path)


class Recorder:
    """Handlers that answer, refuse or fail, and remember every request they got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def handlers(self) -> dict[str, Handler]:
        async def status(request: dict[str, Any]) -> Any:
            self.requests.append(request)
            return {"workers": 2}

        async def restart(request: dict[str, Any]) -> Any:
            self.requests.append(request)
            if request.get("target") == "nonesuch":
                raise CommandError("no runtime or worker called 'nonesuch'")
            return "done"

        async def scale(request: dict[str, Any]) -> Any:
            self.requests.append(request)
            return "done"

        async def boom(request: dict[str, Any]) -> Any:
            raise RuntimeError("kaput")

        return {"status": status, "restart": restart, "scale": scale, "boom": boom}


@contextlib.asynccontextmanager
async def serving(path: Path, handlers: dict[str, Handler]) -> AsyncIterator[ControlServer]:
    server = ControlServer(path, handlers)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


async def exchange(path: Path, *lines: bytes) -> list[Any]:
    """Send raw ``lines`` on one connection; the answers, decoded, in order."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        answers = []
        for line in lines:
            writer.write(line)
            await writer.drain()
            answers.append(json.loads(await reader.readline()))
        return answers
    finally:
        writer.close()
        await writer.wait_closed()


# -- the server and its client -------------------------------------------------------------------------


async def test_a_command_gets_its_handlers_result_and_the_handler_the_whole_request(directory: Path) -> None:
    path = directory / CONTROL_NAME
    recorder = Recorder()
    async with serving(path, recorder.handlers()):
        answer = await asyncio.to_thread(request, path, {"command": "restart", "target": "trio-0"})
    assert answer == {"ok": True, "result": "done"}
    assert recorder.requests == [{"command": "restart", "target": "trio-0"}]


async def test_refusals_and_failures_are_one_line_answers_and_the_connection_survives_them(
    directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = directory / CONTROL_NAME
    async with serving(path, Recorder().handlers()):
        answers = await exchange(
            path,
            b'{"command": "frobnicate"}\n',
            b"[1, 2]\n",
            b'{"command": 3}\n',
            b"not json\n",
            b'{"command": "restart", "target": "nonesuch"}\n',
            b'{"command": "boom"}\n',
            b'{"command": "status"}\n',
        )
    errors = [answer.get("error") for answer in answers]
    assert errors[0] == "unknown command 'frobnicate'; known: status, restart, scale, boom"
    assert errors[1] == errors[2] == 'a request is a JSON object with a "command" string'
    assert errors[3].startswith("not JSON: ")
    assert errors[4] == "no runtime or worker called 'nonesuch'"
    assert errors[5] == "RuntimeError: kaput"
    assert [answer["ok"] for answer in answers] == [False] * 6 + [True]
    assert answers[6]["result"] == {"workers": 2}
    assert all("\n" not in error for error in errors[:6])
    failed = [r for r in caplog.records if r.name == "mcp_supervisor.control"]
    assert [(r.levelno, r.getMessage(), r.exc_info is not None) for r in failed] == [
        (logging.ERROR, "control command failed", True)  # only the unexpected failure is logged
    ]


async def test_the_socket_is_private_to_its_user(directory: Path) -> None:
    path = directory / CONTROL_NAME
    umask = os.umask(0o022)
    try:
        async with serving(path, {}):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert os.umask(0o022) == 0o022  # the process's umask is restored
    finally:
        os.umask(umask)


async def test_a_line_over_the_limit_closes_that_connection_only(directory: Path) -> None:
    path = directory / CONTROL_NAME
    async with serving(path, Recorder().handlers()):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"x" * (MAX_LINE + 1) + b"\n")
        await writer.drain()
        assert await reader.read() == b""  # closed without an answer
        writer.close()
        assert await exchange(path, b'{"command": "status"}\n') == [{"ok": True, "result": {"workers": 2}}]


async def test_after_aclose_nobody_listens_and_aclose_again_is_harmless(directory: Path) -> None:
    path = directory / CONTROL_NAME
    server = ControlServer(path, Recorder().handlers())
    await server.start()
    await server.aclose()
    await server.aclose()
    with pytest.raises(ConnectionError, match="no supervisor is listening at"):
        await asyncio.to_thread(request, path, {"command": "status"})


def test_request_to_a_socket_that_does_not_exist(directory: Path) -> None:
    with pytest.raises(ConnectionError, match=f"no supervisor is listening at {directory}/control.sock"):
        request(directory / CONTROL_NAME, {"command": "status"})


async def test_request_when_the_server_hangs_up_without_answering(directory: Path) -> None:
    path = directory / CONTROL_NAME

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    server = await asyncio.start_unix_server(hang_up, str(path))
    try:
        with pytest.raises(ConnectionError, match="closed the connection"):
            await asyncio.to_thread(request, path, {"command": "status"})
    finally:
        server.close()
        await server.wait_closed()


# -- python -m supervisor ctl --------------------------------------------------------------------------


async def run_ctl(directory: Path, *args: str) -> int:
    return await asyncio.to_thread(ctl.main, ["--runtime-dir", str(directory), *args])


async def test_ctl_sends_the_arguments_of_restart_and_scale(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    async with serving(directory / CONTROL_NAME, recorder.handlers()):
        assert await run_ctl(directory, "restart", "trio-0") == ctl.EXIT_OK
        assert await run_ctl(directory, "scale", "asyncio", "3") == ctl.EXIT_OK
    assert recorder.requests == [
        {"command": "restart", "target": "trio-0"},
        {"command": "scale", "runtime": "asyncio", "count": 3},
    ]
    assert capsys.readouterr().out == "restart: done\nscale: done\n"


async def test_ctl_says_why_a_command_failed_and_exits_1(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(directory / CONTROL_NAME, Recorder().handlers()):
        assert await run_ctl(directory, "restart", "nonesuch") == ctl.EXIT_FAILED
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "mcp-supervisor ctl: restart failed: no runtime or worker called 'nonesuch'\n"


async def test_ctl_json_prints_the_answer_as_it_came(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(directory / CONTROL_NAME, Recorder().handlers()):
        assert await run_ctl(directory, "--json", "status") == ctl.EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"ok": True, "result": {"workers": 2}}


def test_ctl_with_nobody_listening_exits_3(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["--runtime-dir", str(directory), "status"]) == ctl.EXIT_UNREACHABLE
    assert capsys.readouterr().err == (
        f"mcp-supervisor ctl: no supervisor is listening at {directory / CONTROL_NAME}\n"
    )


@pytest.mark.parametrize("argv", [[], ["scale", "go", "1"], ["scale", "trio", "many"], ["frobnicate"]])
def test_ctl_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(argv) == ctl.EXIT_USAGE
    assert "usage: python -m supervisor ctl" in capsys.readouterr().err


def test_ctl_finds_the_socket_by_runtime_dir_by_port_then_the_systemd_service(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse = ctl.build_parser().parse_args
    assert ctl.control_path(parse(["--runtime-dir", "/srv/x", "status"])) == Path("/srv/x/control.sock")
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    service = directory / "service"
    monkeypatch.setattr(ctl, "SYSTEMD_RUNTIME_DIR", service)
    instance = directory / "mcp-supervisor" / "http-8123" / CONTROL_NAME
    assert ctl.control_path(parse(["--port", "8123", "status"])) == instance  # no systemd service either
    service.mkdir()
    (service / CONTROL_NAME).touch()
    assert ctl.control_path(parse(["--port", "8123", "status"])) == service / CONTROL_NAME
    instance.parent.mkdir(parents=True)
    instance.touch()
    assert ctl.control_path(parse(["--port", "8123", "status"])) == instance  # the instance comes first


def test_ctl_status_is_one_line_per_runtime_worker_and_load_error() -> None:
    document = {
        "supervisor": {
            "pid": 10, "state": "running", "uptime_seconds": 61.4, "tools": 26, "calls": 7,
            "rss_bytes": 50 * 1048576,
        },
        "runtimes": {"asyncio": {"ready": True, "failure": None}, "trio": {"ready": False, "failure": "boom"}},
        "workers": [
            {
                "id": "trio-0", "pid": None, "state": "backoff", "cpu_percent": None, "rss_bytes": None,
                "in_flight": 0, "calls_served": 3, "calls_failed": 1, "restarts": 2, "last_exit": "exit code 70",
            },
        ],
        "load_errors": ["tool module 'x' failed to import"],
    }  # fmt: skip
    assert ctl.render_status(document).splitlines() == [
        "supervisor pid 10 running, up 61 s, 26 tools, 7 calls, 50 MB",
        "  asyncio: ready",
        "  trio: NOT READY: boom",
        "  trio-0       pid -       backoff   cpu - mem - in-flight 0 served 3 failed 1 restarts 2"
        " (last: exit code 70)",
        "  load error: tool module 'x' failed to import",
    ]


# -- the supervisor's commands -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def supervisor_control(directory: Path) -> AsyncIterator[tuple[Supervisor, Path]]:
    """A ``Supervisor`` (not started: no worker, no router socket) serving its commands on ``directory``."""
    run = directory / "run"
    supervisor = Supervisor(Settings(runtime_dir=run, task_queue=False, pin_cpus=False), "test")
    try:
        async with serving(supervisor.runtime_dir.control_path, supervisor._control_handlers()):
            yield supervisor, supervisor.runtime_dir.control_path
    finally:
        await supervisor.router.aclose()
        supervisor.runtime_dir.cleanup()


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ({"command": "restart"}, 'restart needs a "target": a runtime (asyncio, trio) or a worker id'),
        ({"command": "restart", "target": "nonesuch"}, "no runtime or worker called 'nonesuch'"),
        ({"command": "scale", "runtime": "go", "count": 1}, "scale needs a runtime among asyncio, trio"),
        ({"command": "scale", "runtime": "trio", "count": 257}, "scale needs a count from 0 to 256"),
        ({"command": "scale", "runtime": "trio", "count": True}, "scale needs a count from 0 to 256"),
        ({"command": "reload"}, "this supervisor cannot reload"),
    ],
)
async def test_the_supervisor_refuses_bad_commands_in_one_line(
    directory: Path, command: dict[str, Any], error: str
) -> None:
    async with supervisor_control(directory) as (_, path):
        assert await asyncio.to_thread(request, path, command) == {"ok": False, "error": error}


async def test_the_supervisor_answers_status_with_the_status_document(directory: Path) -> None:
    async with supervisor_control(directory) as (supervisor, path):
        answer = await asyncio.to_thread(request, path, {"command": "status"})
    assert answer["ok"] is True
    assert answer["result"]["supervisor"]["pid"] == os.getpid()
    assert [w["id"] for w in answer["result"]["workers"]] == ["asyncio-0", "trio-0"]


async def test_a_scale_up_past_the_per_core_limit_is_refused_issue_17(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scaling, "usable_cores", lambda: 2)
    async with supervisor_control(directory) as (_, path):
        answer = await asyncio.to_thread(
            request, path, {"command": "scale", "runtime": "asyncio", "count": 99}
        )
    assert answer == {
        "ok": False,
        "error": "99 asyncio workers is more than 8 (4 per core on 2 cores): more would starve the running "
        "workers",
    }
