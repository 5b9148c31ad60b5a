"""Issue 16, contained workers: what a tool starts dies with its worker, the worker's environment and
limits, the control socket refusing the workers' trees, private files."""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcp import Client

from tests.conftest import REPO, assert_gone, text

pytestmark = pytest.mark.anyio

TOOLS = ("--tools", "tests.integration.contain_tools")


def ready_pids(server: Any) -> dict[str, int]:
    return {w["id"]: w["pid"] for w in server.status()["workers"] if w["state"] == "ready"}


async def call(server: Any, tool: str, arguments: dict[str, Any] | None = None) -> Any:
    async with Client(server.url) as client:
        result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, result
    if result.structured_content is None:
        return text(result)
    return result.structured_content.get("result", result.structured_content)


async def spawn_tree(server: Any) -> list[int]:
    """The pids of a child in the worker's group and of a grandchild that left it with setsid()."""
    tree = await call(server, "it_spawn_tree")
    assert os.getsid(tree["escaped"]) != os.getsid(ready_pids(server)["asyncio-0"])
    return [tree["child"], tree["escaped"]]


async def test_issue16_a_dead_worker_is_replaced_at_once_and_its_tools_processes_die(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(*TOOLS)
    leftovers = await spawn_tree(server)
    old = ready_pids(server)["asyncio-0"]
    os.kill(old, signal.SIGKILL)
    # before: the escaped grandchild held the worker's stderr, the supervisor waited for its EOF and the
    # slot stayed empty for the grandchild's whole life
    server.wait_for(lambda: ready_pids(server).get("asyncio-0") not in (old, None), "a new asyncio-0", 10)
    assert_gone(leftovers)
    assert (await call(server, "echo", {"message": "after"})) == "after"


async def test_issue16_stop_leaves_no_process_of_a_tools_tree_behind(supervisor_factory: Any) -> None:
    server = supervisor_factory(*TOOLS)
    leftovers = await spawn_tree(server)
    escaped = psutil.Process(leftovers[1])
    assert escaped.ppid() == ready_pids(server)["asyncio-0"], "it stays in the worker's tree (subreaper)"
    assert server.stop() == 0
    assert_gone(leftovers)


async def test_issue16_a_tool_cannot_stop_the_server_through_the_control_socket(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(*TOOLS)
    answer = await call(server, "it_ctl", {"port": server.port, "command": "stop"})
    assert answer["code"] == 1, answer
    assert "refused" in answer["output"] and "tools may not control it" in answer["output"]
    assert "control connection refused: pid" in server.log()
    assert server.get("/readyz").status_code == 200
    assert (await call(server, "echo", {"message": "still up"})) == "still up"
    operator = subprocess.run(
        [sys.executable, "-m", "supervisor", "ctl", "--port", str(server.port), "status"],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert operator.returncode == 0, operator.stderr


async def test_issue16_workers_get_an_allow_listed_environment_and_limits(supervisor_factory: Any) -> None:
    server = supervisor_factory(
        *TOOLS,
        env={
            "CONTAIN_SECRET": "hunter2",
            "MCP_SUPERVISOR_WORKER_RLIMIT_NOFILE": "1000",
            "MCP_SUPERVISOR_WORKER_RLIMIT_AS": str(8 << 30),
        },
    )
    names = await call(server, "it_environment")
    assert "PATH" in names and "PYTHONUNBUFFERED" in names
    assert "CONTAIN_SECRET" not in names
    assert not [name for name in names if name.startswith("MCP_SUPERVISOR_")]
    confinement = await call(server, "it_confinement")
    assert confinement == {
        "core": [0, 0],
        "nofile": [1000, 1000],
        "as": [8 << 30, 8 << 30],
        "dumpable": 0,
        "subreaper": 1,
        "session_leader": True,
    }


async def test_issue16_a_worker_over_max_worker_rss_finishes_its_calls_before_it_is_replaced(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(
        *TOOLS,
        env={"MCP_SUPERVISOR_MAX_WORKER_RSS": str(200 * 1024 * 1024), "MCP_SUPERVISOR_SHUTDOWN_GRACE": "0.5"},
    )
    old = ready_pids(server)["asyncio-0"]
    # the call holds on well past the memory check (every 2 s) and past shutdown_grace
    held = await call(server, "it_grow_and_hold", {"megabytes": 250, "seconds": 6})
    assert held == "held"
    server.wait_for(lambda: ready_pids(server).get("asyncio-0") not in (old, None), "the recycled worker")
    assert "over max_worker_rss" in server.log()


async def test_issue16_the_task_database_is_private_in_an_open_folder(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    database = folder / "tasks.db"
    server = supervisor_factory(*TOOLS, "--task-db", str(database))
    server.wait_for(lambda: (folder / "tasks.db-wal").exists(), "the WAL file")
    files = sorted(path.name for path in folder.iterdir())
    assert {"tasks.db", "tasks.db-wal"} <= set(files)
    for name in files:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_issue16_a_runtime_folder_owned_by_another_user_is_refused_naming_the_owner(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    nobody = pwd.getpwnam("nobody")
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    server = supervisor_factory("--runtime-dir", str(folder), wait=False)
    assert server.process.wait(30) != 0
    assert f"owned by nobody (uid {nobody.pw_uid})" in server.log()
