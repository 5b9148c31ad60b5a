"""``worker_user``/``worker_group`` (issue 16): a supervisor started as root runs its tools as ``nobody``.

A real supervisor (root) with asyncio, Trio and task-queue workers that drop to ``nobody``/``nogroup``
before importing a tool: the tools report those ids (real, effective and saved), cannot read a 0600 file
of root's nor reach the control or the router socket, the task queue runs a task and keeps its database
as the worker user's, and the supervisor itself stays root. Refused configurations stop the start with one
line. On a machine where ``nobody`` cannot read the interpreter the supervisor runs in a mount namespace
that opens the way to it (``tests.unprivileged``).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcp import Client

from tests.conftest import REPO, SPARES, RunningSupervisor, spawn_supervisor, stdio_server
from tests.integration.test_taskqueue import tool, wait_for_task
from tests.unprivileged import needs_root, reachable

pytestmark = [pytest.mark.slow, pytest.mark.anyio, needs_root()]

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrnam("nogroup")


class Place:
    """A folder ``nobody`` may pass through (0711) with what the tests need in it."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="worker-user-"))
        self.base.chmod(0o711)
        self.database = self.base / "queue" / "tasks.db"  # the supervisor makes "queue" nobody's
        self.runtime = self.base / "run"
        self.secret = self.base / "secret.txt"
        self.secret.write_text("root only")
        self.secret.chmod(0o600)
        self.public = self.base / "public.txt"
        self.public.write_text("anyone")
        self.public.chmod(0o644)

    def arguments(self) -> list[str]:
        return [
            "--worker-user", "nobody", "--worker-group", NOGROUP.gr_name, "--task-db", str(self.database),
            "--runtime-dir", str(self.runtime),
        ]  # fmt: skip


@pytest.fixture(scope="module")
def place() -> Iterator[Place]:
    made = Place()
    yield made
    shutil.rmtree(made.base, ignore_errors=True)


@pytest.fixture(scope="module")
def server(place: Place) -> Iterator[RunningSupervisor]:
    running = spawn_supervisor(  # with spares: they must drop to the worker user too
        "--tools", "tests.integration.user_tools", *SPARES, *place.arguments(), wrap=reachable
    )
    yield running
    running.stop()


async def test_tools_run_as_the_worker_user_in_both_runtimes(server: RunningSupervisor) -> None:
    async with Client(server.url) as client:
        for name in ("it_identity_asyncio", "it_identity_trio"):
            seen = await tool(client, name)
            assert seen["uid"] == [NOBODY.pw_uid] * 3, name
            assert seen["gid"] == [NOGROUP.gr_gid] * 3, name
            assert seen["groups"] == sorted(set(os.getgrouplist("nobody", NOGROUP.gr_gid))), name
            assert seen["home"] == NOBODY.pw_dir, name
            assert seen["dumpable"] == 0, name  # set again after the drop, which resets it
    assert psutil.Process(server.pid).uids().real == 0
    server.wait_for(  # asyncio, trio, trio-queue and a spare of each tool pool, all past their start
        lambda: sorted(w["state"] for w in server.status()["workers"]) == ["ready"] * 3 + ["spare"] * 2,
        "the workers and the spares to be ready",
    )
    workers = psutil.Process(server.pid).children()
    for worker in workers:
        assert set(worker.uids()) == {NOBODY.pw_uid} and set(worker.gids()) == {NOGROUP.gr_gid}


async def test_a_tool_cannot_read_a_file_only_root_may_read(server: RunningSupervisor, place: Place) -> None:
    async with Client(server.url) as client:
        assert (await client.call_tool("it_read", {"path": str(place.public)})).content[
            0
        ].text == "read: anyone"  # type: ignore[union-attr]
        refused = await client.call_tool("it_read", {"path": str(place.secret)})
        assert refused.content[0].text == "refused: PermissionError"  # type: ignore[union-attr]


async def test_a_tool_reaches_neither_the_control_socket_nor_the_router(
    server: RunningSupervisor, place: Place
) -> None:
    async with Client(server.url) as client:
        for name in ("control.sock", "router.sock"):
            answer = await client.call_tool("it_connect", {"path": str(place.runtime / name)})
            assert answer.content[0].text == "refused: PermissionError", name  # type: ignore[union-attr]
    status = subprocess.run(
        [sys.executable, "-m", "supervisor", "ctl", "--runtime-dir", str(place.runtime), "status"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr  # root still controls it


async def test_the_task_queue_runs_as_the_worker_user(server: RunningSupervisor, place: Place) -> None:
    async with Client(server.url) as client:
        submitted = await tool(client, "task_submit", task_type="it_identity_trio", payload={})
        done = await wait_for_task(client, submitted["task_id"])
        assert done["status"] == "completed", done
        result: dict[str, Any] = await tool(client, "task_result", task_id=submitted["task_id"])
        assert result["output"]["uid"] == [NOBODY.pw_uid] * 3
    folder = place.database.parent.stat()
    assert (folder.st_uid, stat.S_IMODE(folder.st_mode)) == (NOBODY.pw_uid, 0o700)
    files = [p for p in place.database.parent.iterdir() if p.name.startswith("tasks.db")]
    assert {p.name for p in files} >= {"tasks.db", "tasks.db-wal"}
    for path in files:
        info = path.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (NOBODY.pw_uid, 0o600), path


async def test_over_stdio_the_tools_run_as_the_worker_user_too(place: Place) -> None:
    params = stdio_server(tools="tests.integration.user_tools")
    database = place.base / "stdio-queue" / "tasks.db"
    arguments = [*params.args, "--worker-user", "nobody", "--task-db", str(database), "--spare-workers", "0"]
    command = reachable([params.command, *arguments])
    params = params.model_copy(update={"command": command[0], "args": command[1:]})
    async with Client(params, read_timeout_seconds=30) as client:
        seen = await tool(client, "it_identity_trio")
    assert seen["uid"] == [NOBODY.pw_uid] * 3
    assert database.parent.stat().st_uid == NOBODY.pw_uid


def refused_start(*args: str, wrap: bool = True) -> str:
    """The one line a supervisor that must not start prints, after checking it exited 2."""
    running = spawn_supervisor(*args, wait=False, wrap=reachable if wrap else None)
    code = running.process.wait(60)
    lines = [line for line in running.log().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, running.log()
    return lines[0]


def test_an_unknown_user_or_group_is_one_line() -> None:
    line = refused_start("--worker-user", "no-such-user-here", "--no-task-queue", wrap=False)
    assert line == (
        "mcp-supervisor: error: invalid worker_user = 'no-such-user-here' on the command line: "
        "no user 'no-such-user-here' on this system (user the workers run as when the supervisor starts as root)"
    )
    line = refused_start(
        "--worker-user", "nobody", "--worker-group", "no-such-group", "--no-task-queue", wrap=False
    )
    assert "invalid worker_group = 'no-such-group'" in line and "no group 'no-such-group'" in line


def test_a_database_folder_the_worker_user_cannot_reach_is_one_line(place: Place) -> None:
    closed = Path(tempfile.mkdtemp(prefix="closed-"))  # 0700, root's
    try:
        line = refused_start(
            "--worker-user", "nobody", "--task-db", str(closed / "queue" / "tasks.db"), "--spare-workers", "0"
        )
        assert line == (
            f"mcp-supervisor: error: worker_user nobody cannot use {closed / 'queue'}: {closed} cannot be "
            f"searched by uid {NOBODY.pw_uid}"
        )
        owned = place.base / "roots"
        owned.mkdir(mode=0o700)
        line = refused_start("--worker-user", "nobody", "--task-db", str(owned / "tasks.db"))
        assert f"its folder {owned} belongs to root (uid 0), not to worker_user nobody" in line
    finally:
        shutil.rmtree(closed, ignore_errors=True)


async def test_a_reload_replaces_every_worker_with_workers_of_the_same_user(
    server: RunningSupervisor,
) -> None:
    """Last in the module: the new workers (and the probe the reload runs first) are ``nobody``'s too."""

    def slots() -> dict[str, int]:  # not the spares, which a reload replaces at their own pace
        return {w["id"]: w["pid"] for w in server.status()["workers"] if "-spare-" not in w["id"]}

    before = slots()
    server.process.send_signal(signal.SIGHUP)
    server.wait_for(lambda: "reload done" in server.log(), "the reload to finish")
    after = slots()
    assert after.keys() == before.keys() and not set(after.values()) & set(before.values())
    async with Client(server.url) as client:
        for name in ("it_identity_asyncio", "it_identity_trio"):
            seen = await tool(client, name)
            assert seen["uid"] == [NOBODY.pw_uid] * 3 and seen["pid"] in after.values(), name
