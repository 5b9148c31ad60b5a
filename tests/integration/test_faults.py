"""Workers that die, modules that do not import, bad configuration: clear answers, never a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import REPO, call_during, free_port, text

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("tool", "worker_id"), [("it_hold", "asyncio-0"), ("it_hold_trio", "trio-0")])
async def test_kill_9_during_a_call_answers_it_and_a_new_worker_serves(
    supervisor_factory: Any, tool: str, worker_id: str
) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    old_pid = server.worker(worker_id)["pid"]
    async with Client(server.url) as client:
        result = await call_during(client, tool, {"seconds": 30}, lambda: os.kill(old_pid, signal.SIGKILL))
        assert result.is_error is True
        assert f"worker {worker_id} (pid {old_pid}) killed by SIGKILL" in text(result)

        new = server.wait_for(
            lambda: (w := server.worker(worker_id))["state"] == "ready" and w["pid"] != old_pid and w,
            f"{worker_id} to come back",
        )
        assert new["restarts"] == 1
        assert "killed by SIGKILL" in new["last_exit"]
        whoami = "whoami_asyncio" if worker_id.startswith("asyncio") else "whoami_trio"
        served = await client.call_tool(whoami, {})
        assert served.structured_content["pid"] == new["pid"]


def test_sigterm_stops_the_supervisor_and_every_child(supervisor_factory: Any) -> None:
    server = supervisor_factory()
    assert len(server.children) >= 2
    assert server.stop(signal.SIGTERM) == 0  # stop() also checks every child is gone
    assert "stopped cleanly" in server.log()


async def test_a_tool_module_that_fails_to_import_is_reported_and_the_rest_served(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(
        "--tools", "tests.integration.broken_tools", "--tools", "tests.integration.call_tools"
    )
    errors = server.status()["load_errors"]
    assert errors == [
        "tool module 'tests.integration.broken_tools' failed to import: ImportError: "
        "this module is broken on purpose (tests)"
    ]
    async with Client(server.url) as client:
        assert text(await client.call_tool("echo", {"message": "still here"})) == "still here"
        assert (await client.call_tool("whoami_trio", {})).structured_content["runtime"] == "trio"


async def test_a_runtime_that_keeps_crashing_is_marked_failed_and_the_other_serves(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory("--tools", "tests.integration.trio_crash_tools", wait=False)

    def trio_failed() -> bool:
        response = server.try_get("/readyz")
        return (
            response is not None
            and response.status_code == 503
            and "every trio worker is failing" in response.text
        )

    server.wait_for(
        trio_failed,
        "/readyz to report the failed trio runtime",
        deadline=30,
    )
    readyz = server.get("/readyz").json()
    assert readyz["ready"] is False
    assert readyz["runtimes"] == {"asyncio": True, "trio": False, "trio-queue": True}
    assert "exit code 70" in readyz["reason"]
    trio_worker = server.worker("trio-0")
    assert trio_worker["state"] == "failed" and trio_worker["restarts"] >= 5
    async with Client(server.url) as client:
        assert text(await client.call_tool("echo", {"message": "asyncio fine"})) == "asyncio fine"
        result = await client.call_tool("whoami_trio", {})
    assert result.is_error is True
    assert "runtime trio is unavailable" in text(result)


def run_supervisor_expecting_failure(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    completed = subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    return completed.returncode, completed.stderr


def test_a_port_in_use_is_one_clear_line() -> None:
    import socket

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        code, stderr = run_supervisor_expecting_failure("--port", str(port))
    assert code == 2
    assert stderr.strip() == (
        f"mcp-supervisor: error: port {port} on 127.0.0.1 is already in use; "
        "stop the other server or choose another --port"
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--port", "http"], None, "invalid port = 'http' on the command line"),
        (["--workers-trio", "-1"], None, "invalid workers_trio = '-1' on the command line"),
        (
            [],
            {"MCP_SUPERVISOR_REQUEST_TIMEOUT": "soon"},
            "invalid request_timeout = 'soon' from MCP_SUPERVISOR_REQUEST_TIMEOUT",
        ),
        ([], {"MCP_SUPERVISOR_BOGUS": "1"}, "unknown environment variable MCP_SUPERVISOR_BOGUS"),
        (["--config", "/nonexistent/mcp.toml"], None, "config file '/nonexistent/mcp.toml' does not exist"),
        (["--tools", "not a module"], None, "invalid tools = ['not a module'] on the command line"),
        (  # issue 17: a configuration asking for 999 workers started them all, starving the machine
            ["--workers-asyncio", "256"],
            None,
            "workers_asyncio = 256: 256 asyncio workers is more than",
        ),
    ],
)
def test_bad_configuration_is_refused_in_one_line(
    args: list[str], env: dict[str, str] | None, expected: str
) -> None:
    code, stderr = run_supervisor_expecting_failure(*args, env=env)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mcp-supervisor: error: ")
    assert expected in lines[0]


async def test_sigterm_lets_in_flight_calls_finish(supervisor_factory: Any) -> None:
    server = supervisor_factory()
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    results: list[Any] = []
    try:
        async with Client(server.url) as client:
            await client.list_tools()  # the client validates results against the listing: fetch it now

            async def call() -> None:
                results.append(
                    await client.call_tool("trio_sleep", {"seconds": 1}, progress_callback=on_progress)
                )

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(call)
                    await started.wait()
                    server.process.send_signal(signal.SIGTERM)
    except Exception:  # closing the client talks to a server that has gone away, as asked
        pass
    assert text(results[0]) == "slept 1 s"
    assert server.stop() == 0


async def test_calls_that_outlive_the_grace_period_are_cut_and_the_exit_code_says_so(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory("--shutdown-grace", "0.5")
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async def call(client: Client) -> None:
        try:
            await client.call_tool("sleep", {"seconds": 60}, progress_callback=on_progress)
        except Exception:
            pass  # the connection is cut: what matters is that the client is not left hanging

    with anyio.fail_after(20):
        async with Client(server.url) as client, anyio.create_task_group() as tasks:
            tasks.start_soon(call, client)
            await started.wait()
            server.process.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(server.process.wait)
            tasks.cancel_scope.cancel()
    assert code == 3
    assert server.stop() == 3  # already exited; checks that no child survived


async def test_no_pin_leaves_the_workers_on_every_core(supervisor_factory: Any) -> None:
    server = supervisor_factory("--no-pin")
    async with Client(server.url) as client:
        affinity = (await client.call_tool("whoami_trio", {})).structured_content["cpu_affinity"]
    assert affinity == sorted(os.sched_getaffinity(0))


async def test_a_read_only_call_is_retried_once_on_the_new_worker(supervisor_factory: Any) -> None:
    """End to end through a real kill -9: the arbiter reaps and restarts the only asyncio worker, and the
    call is answered by the new one within its deadline. The routing rules themselves (retried once, on
    the next worker of the pool, only for a read-only or idempotent tool, and the trio case) are unit
    tests in tests/supervisor/test_router.py."""
    tool, worker_id = "sleep", "asyncio-0"
    server = supervisor_factory()
    old_pid = server.worker(worker_id)["pid"]
    async with Client(server.url) as client:
        result = await call_during(client, tool, {"seconds": 0.5}, lambda: os.kill(old_pid, signal.SIGKILL))
    assert result.is_error is False
    assert text(result) == "slept 0.5 s"
    assert server.worker(worker_id)["restarts"] == 1
    assert "retrying" in server.log() and "once on another worker" in server.log()


async def test_a_worker_that_cannot_answer_its_deadline_is_cut_off_by_the_router(
    supervisor_factory: Any, tmp_path: Any
) -> None:
    """The worker enforces a call's deadline itself; when its loop is blocked it cannot, and the router's
    backstop (deadline + BACKSTOP_MARGIN, swept every SWEEP_INTERVAL) answers the call instead. The
    heartbeat is slowed so that the worker is not declared dead first."""
    config = tmp_path / "slow-heartbeat.toml"
    config.write_text("heartbeat_interval = 20.0\n")
    server = supervisor_factory(
        "--tools", "tests.integration.call_tools", "--config", str(config), "--request-timeout", "0.5"
    )
    async with Client(server.url) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("it_block_loop_async", {"seconds": 5})
        assert result.is_error is True
        assert "tool 'it_block_loop_async' did not answer within 0.5 s" in text(result)
        assert server.worker("asyncio-0")["restarts"] == 0  # cut off by the router, not killed
