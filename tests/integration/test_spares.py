"""Warm spares with real processes: a worker killed or stopped is replaced by its pool's spare, which
serves the same tools from a process of its own, with fresh module state, and never took a call before;
stopping the supervisor leaves no spare behind."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from mcp import Client

from tests.conftest import SPARES, assert_gone, text

pytestmark = pytest.mark.anyio


def ready_spare(server: Any, pool: str, not_pid: int | None = None) -> dict[str, Any]:
    """The pool's spare once it is READY (another process than ``not_pid``)."""
    return server.wait_for(
        lambda: (w := server.worker(f"{pool}-spare-0"))["state"] == "spare" and w["pid"] != not_pid and w,
        f"a READY {pool} spare",
        deadline=40,
    )


async def test_a_killed_worker_is_replaced_by_its_spare_with_the_same_tools_and_a_fresh_state(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(
        "--tools", "tests.integration.call_tools", *SPARES, env={"IT_SPARE_PROBE": "allowed"}
    )
    spare = ready_spare(server, "asyncio")
    old = server.worker("asyncio-0")
    assert spare["pid"] != old["pid"] and spare["tools"] == old["tools"]
    async with Client(server.url, mode="2026-07-28") as client:
        counts = [text(await client.call_tool("it_count", {})) for _ in range(3)]
        assert counts == ["1", "2", "3"]
        status = {w["id"]: w for w in server.status()["workers"]}
        assert status["asyncio-spare-0"]["calls_served"] == 0 and status["asyncio-0"]["calls_served"] >= 3

        os.kill(old["pid"], signal.SIGKILL)
        new = server.wait_for(
            lambda: (w := server.worker("asyncio-0"))["pid"] != old["pid"] and w["state"] == "ready" and w,
            "asyncio-0 to be replaced",
        )
        assert new["pid"] == spare["pid"]  # the spare took the slot, not a new interpreter
        assert new["restarts"] == 1 and "killed by SIGKILL" in new["last_exit"]
        assert f"replaced by asyncio-spare-0 (pid {spare['pid']})" in server.log()
        assert text(await client.call_tool("it_count", {})) == "1"  # the module's state is fresh
        served = await client.call_tool("whoami_asyncio", {})
        assert served.structured_content["pid"] == spare["pid"]
        assert text(await client.call_tool("echo", {"message": "same tools"})) == "same tools"
        # the spare got the workers' allow-listed environment (worker_env), neither less nor more
        assert text(await client.call_tool("it_env", {"name": "IT_SPARE_PROBE"})) == "allowed"
        assert server.worker("asyncio-0")["tools"] == old["tools"]

    following = ready_spare(server, "asyncio", not_pid=spare["pid"])  # the next spare was started
    pids = [w["pid"] for w in server.status()["workers"] if w["pid"] is not None]
    assert following["pid"] in pids and server.worker("trio-spare-0")["pid"] in pids
    assert server.stop() == 0
    assert_gone(pids)


async def test_no_spare_with_spare_workers_0_and_a_kill_is_a_restart(supervisor_factory: Any) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools", "--spare-workers", "0")
    old = server.worker("asyncio-0")
    assert not any("spare" in w["id"] for w in server.status()["workers"])
    os.kill(old["pid"], signal.SIGKILL)
    server.wait_for(
        lambda: (w := server.worker("asyncio-0"))["pid"] not in (None, old["pid"]) and w["state"] == "ready",
        "asyncio-0 to be restarted",
    )
    assert "restarting in 0.1 s" in server.log() and "replaced by" not in server.log()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_repin_moves_every_thread_of_a_running_process() -> None:
    """A spare adopted by a slot of another core is moved there from the supervisor, thread by thread."""
    import subprocess
    import sys

    import psutil

    from supervisor.spares import repin

    threads = (
        "import threading, time; [threading.Thread(target=time.sleep, args=(60,)).start() for _ in range(3)]"
    )
    child = subprocess.Popen([sys.executable, "-c", f"{threads}; print('up', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        target = sorted(os.sched_getaffinity(0))[-1]
        tids = [thread.id for thread in psutil.Process(child.pid).threads()]
        assert len(tids) == 4 and any(os.sched_getaffinity(tid) != {target} for tid in tids)
        repin(child.pid, target)
        assert {tid: os.sched_getaffinity(tid) for tid in tids} == dict.fromkeys(tids, {target})
    finally:
        child.kill()
        child.communicate()
