"""Chaos on the call path: workers killed, stopped and crashing, the supervisor killed. Bounded, loopback."""

from __future__ import annotations

import os
import signal
from typing import Any

import anyio
import psutil
import pytest
from mcp import Client

from shared.protocol import ORPHAN_MISSES
from tests.conftest import SPARES, assert_gone, call_during, text

pytestmark = pytest.mark.anyio


def test_sigkill_of_the_supervisor_leaves_no_worker_behind(supervisor_factory: Any) -> None:
    # Heartbeats a minute apart: a worker would notice the silence only after three minutes, so within
    # the deadline only the parent-death signal can have ended it.
    server = supervisor_factory(env={"MCP_SUPERVISOR_HEARTBEAT_INTERVAL": "60"})
    workers = list(server.children)
    assert len(workers) >= 2
    server.process.kill()
    server.process.wait(10)
    assert_gone(workers, deadline=20.0)


async def test_a_stopped_worker_is_replaced_and_the_other_runtime_is_unaffected(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools", *SPARES)
    stopped_pid = server.worker("trio-0")["pid"]
    spare = server.wait_for(
        lambda: (w := server.worker("trio-spare-0"))["state"] == "spare" and w, "the trio spare", deadline=40
    )
    os.kill(stopped_pid, signal.SIGSTOP)
    try:
        async with Client(server.url) as client:
            # the asyncio runtime keeps answering while trio-0 is frozen
            for _ in range(5):
                assert text(await client.call_tool("echo", {"message": "alive"})) == "alive"
            # the liveness window is 1.2 s (three heartbeats); the deadline only bounds a hang
            replaced = server.wait_for(
                lambda: (
                    (w := server.worker("trio-0"))["pid"] not in (None, stopped_pid)
                    and w["state"] == "ready"
                    and w
                ),
                "trio-0 to be replaced",
            )
            assert "missing heartbeats" in replaced["last_exit"]
            assert replaced["pid"] == spare["pid"]  # replaced by the spare, not a new interpreter
            served = await client.call_tool("whoami_trio", {})
            assert served.structured_content["pid"] == replaced["pid"]
    finally:
        if psutil.pid_exists(stopped_pid):
            os.kill(stopped_pid, signal.SIGKILL)


async def test_a_blocked_event_loop_gets_its_worker_replaced(supervisor_factory: Any) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    old_pid = server.worker("asyncio-0")["pid"]
    async with Client(server.url) as client:
        result = await client.call_tool("it_block_loop_async", {"seconds": 8})
        assert result.is_error is True
        assert "missing heartbeats" in text(result)
        new = server.wait_for(
            lambda: (w := server.worker("asyncio-0"))["state"] == "ready" and w["pid"] != old_pid and w,
            "asyncio-0 to come back",
        )
        assert (await client.call_tool("whoami_asyncio", {})).structured_content["pid"] == new["pid"]


async def test_kill_9_twenty_times_every_call_answered(supervisor_factory: Any) -> None:
    # Twenty deaths in a minute would quarantine it_hold, the tool running at each (3 in 60 s), and the
    # backoff would grow to 30 s: this test is about answers and restarts, so it relaxes both. With a
    # spare each round's worker is ready sooner than a new interpreter would be (17 s instead of 21 s).
    server = supervisor_factory(
        "--tools",
        "tests.integration.call_tools",
        *SPARES,
        env={"MCP_SUPERVISOR_QUARANTINE_DEATHS": "0", "MCP_SUPERVISOR_RESTART_BACKOFF_MAX": "0.4"},
    )
    killed: list[int] = []
    async with Client(server.url, mode="2026-07-28") as client:
        for _round in range(20):
            pid, result = await kill_asyncio_worker_during_a_call(server, client)
            assert result.is_error is True and "killed by SIGKILL" in text(result)
            killed.append(pid)
        assert len(set(killed)) == 20  # every round found a new worker running the call
        final = server.wait_for(
            lambda: (w := server.worker("asyncio-0"))["state"] == "ready" and w, "last restart"
        )
        assert final["restarts"] == 20
        assert text(await client.call_tool("echo", {"message": "still serving"})) == "still serving"


async def kill_asyncio_worker_during_a_call(server: Any, client: Client) -> tuple[int, Any]:
    """Start a long call on asyncio-0, SIGKILL the worker once the call runs; return the pid killed and
    the call's answer."""
    worker = server.wait_for(
        lambda: (w := server.worker("asyncio-0"))["state"] == "ready" and w, "asyncio-0 ready"
    )
    result = await call_during(
        client, "it_hold", {"seconds": 30}, lambda: os.kill(worker["pid"], signal.SIGKILL)
    )
    return worker["pid"], result


async def test_a_tool_that_aborts_its_worker(supervisor_factory: Any) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    async with Client(server.url) as client:
        result = await client.call_tool("it_abort", {})
        assert result.is_error is True
        assert "killed by SIGABRT" in text(result)
        # the other runtime never noticed
        assert text(await client.call_tool("echo", {"message": "fine"})) == "fine"
        trio_worker = server.wait_for(
            lambda: (w := server.worker("trio-0"))["state"] == "ready" and w, "trio-0 back"
        )
        assert trio_worker["restarts"] == 1 and "SIGABRT" in trio_worker["last_exit"]


async def test_a_busy_front_does_not_kill_healthy_workers(supervisor_factory: Any) -> None:
    """Saturate the supervisor's loop with calls while heartbeats are frequent (0.2 s, so a 0.6 s
    liveness window): no worker may be declared dead. The load is a number of calls, not a duration:
    32 callers of 60 calls each, about 5 s of calls on a busy 2-core machine, many liveness windows."""
    server = supervisor_factory(
        "--tools", "tests.integration.call_tools", env={"MCP_SUPERVISOR_HEARTBEAT_INTERVAL": "0.2"}
    )
    before = {w["id"]: w["pid"] for w in server.status()["workers"]}
    async with Client(server.url, mode="2026-07-28") as client:
        await client.list_tools()

        async def hammer(tool: str, arguments: dict[str, Any]) -> None:
            for _ in range(60):
                result = await client.call_tool(tool, arguments)
                assert result.is_error is False, text(result)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as load:
                for _ in range(16):
                    load.start_soon(hammer, "echo", {"message": "x"})
                    load.start_soon(hammer, "whoami_trio", {})
    after = {w["id"]: (w["pid"], w["restarts"]) for w in server.status()["workers"]}
    assert after == {worker_id: (pid, 0) for worker_id, pid in before.items()}
    assert "missed" not in server.log()


def test_workers_leave_a_supervisor_that_stops_answering(supervisor_factory: Any) -> None:
    """SIGSTOP the supervisor: its workers hear nothing for the liveness window and exit by themselves;
    after SIGCONT the supervisor reaps them and starts new ones."""
    server = supervisor_factory(env={"MCP_SUPERVISOR_HEARTBEAT_INTERVAL": "0.3"})
    workers = list(server.children)
    server.process.send_signal(signal.SIGSTOP)
    try:
        assert_gone(workers, deadline=0.3 * ORPHAN_MISSES + 3.0)  # their window, then time to exit
    finally:
        server.process.send_signal(signal.SIGCONT)
    server.wait_for(
        lambda: all(
            w["state"] in ("ready", "spare") and w["pid"] not in workers for w in server.status()["workers"]
        ),
        "new workers after SIGCONT",
    )
    assert "no word from the router" in server.log()


def test_backoff_grows_while_a_worker_keeps_dying(supervisor_factory: Any) -> None:
    server = supervisor_factory("--tools", "tests.integration.trio_crash_tools", wait=False)
    server.wait_for(lambda: "resting" in server.log(), "the trio slot to be marked failed", deadline=30)
    delays = [
        float(line.rsplit("restarting in ", 1)[1].split(" ")[0])
        for line in server.log().splitlines()
        if "trio-0" in line and "restarting in" in line
    ]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
