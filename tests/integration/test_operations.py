"""What operators see and use: /status and /metrics figures, systemd notify, ctl, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from shared.heap import GEN0_THRESHOLD
from supervisor.rundir import default_runtime_dir
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.anyio


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", "ctl", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_status_and_metrics_follow_the_load_and_a_restart(supervisor_factory: Any) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    async with Client(server.url) as client:
        for _ in range(5):
            await client.call_tool("echo", {"message": "x"})
        await client.call_tool("it_fail", {"message": "boom"})
    status = server.wait_for(
        lambda: (
            (s := server.status())["supervisor"]["rss_bytes"]
            and all(w["rss_bytes"] for w in s["workers"])
            and s
        ),
        "the sampler's first figures",
    )
    echo = status["tools"]["asyncio"]["echo"]
    assert echo["calls"] == 5 and echo["outcomes"] == {"ok": 5} and echo["p50_ms"] > 0
    assert status["tools"]["asyncio"]["it_fail"]["outcomes"] == {"tool_error": 1}
    for worker in status["workers"]:
        assert worker["threads"] >= 1 and worker["open_fds"] > 0 and worker["cpu_affinity"]
    # start-up's heap (the SDK, pydantic, uvicorn: ~90,000 objects) was frozen before serving
    assert status["supervisor"]["gc"]["frozen_objects"] > 50_000
    assert status["supervisor"]["gc"]["thresholds"][0] == GEN0_THRESHOLD
    samples = metric_samples(server.get("/metrics").text)
    assert (
        samples[
            ("mcp_supervisor_tool_calls_total", (("outcome", "ok"), ("runtime", "asyncio"), ("tool", "echo")))
        ]
        == 5
    )
    assert (
        samples[
            ("mcp_supervisor_tool_call_duration_seconds_count", (("runtime", "asyncio"), ("tool", "echo")))
        ]
        == 5
    )
    assert samples[("mcp_supervisor_worker_ready", (("runtime", "trio"), ("worker", "trio-0")))] == 1
    assert (
        "mcp_supervisor_process_resident_memory_bytes",
        (("process", "supervisor"), ("runtime", "supervisor")),
    ) in samples

    os.kill(server.worker("trio-0")["pid"], signal.SIGKILL)
    server.wait_for(
        lambda: server.worker("trio-0")["restarts"] == 1 and server.worker("trio-0")["state"] == "ready",
        "restart",
    )
    assert "killed by SIGKILL" in server.worker("trio-0")["last_exit"]
    samples = metric_samples(server.get("/metrics").text)
    assert samples[("mcp_supervisor_worker_restarts_total", (("runtime", "trio"), ("worker", "trio-0")))] == 1
    assert (
        samples[
            (
                "mcp_supervisor_http_requests_total",
                (("method", "GET"), ("path", "/status"), ("status", "200")),
            )
        ]
        >= 1
    )


def test_systemd_notify_messages_in_order(supervisor_factory: Any, tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(20)
    server = supervisor_factory(
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}, wait=False
    )

    def receive_until(wanted: str) -> list[str]:
        seen: list[str] = []
        while True:
            message = notify.recv(4096).decode()
            seen.append(message)
            if wanted in message.splitlines():
                return seen

    try:
        ready = receive_until("READY=1")
        assert any(line.startswith("STATUS=serving 26 tools") for line in ready[-1].splitlines())
        assert "WATCHDOG=1" in receive_until("WATCHDOG=1")[-1]
        server.wait_ready()
        for worker in server.status()["workers"]:
            environment = Path(f"/proc/{worker['pid']}/environ").read_bytes().split(b"\0")
            assert not any(entry.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_USEC=")) for entry in environment)
        server.process.send_signal(signal.SIGHUP)
        reloading = receive_until("RELOADING=1")[-1].splitlines()
        assert any(line.startswith("MONOTONIC_USEC=") for line in reloading)
        receive_until("READY=1")
        server.process.send_signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        assert server.stop() == 0
    finally:
        notify.close()


async def test_ctl_changes_the_running_system(supervisor_factory: Any) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    port = str(server.port)
    status = ctl("--port", port, "status")
    assert status.returncode == 0, status.stderr
    assert "asyncio-0" in status.stdout and "trio-0" in status.stdout
    document = json.loads(ctl("--port", port, "--json", "status").stdout)
    assert document["ok"] is True and document["result"]["supervisor"]["pid"] == server.pid
    control = default_runtime_dir(f"http-{server.port}") / "control.sock"
    assert stat.S_IMODE(control.stat().st_mode) == 0o600

    scaled = ctl("--port", port, "scale", "asyncio", "2")
    assert scaled.returncode == 0, scaled.stderr
    new_pid = server.worker("asyncio-1")["pid"]
    async with Client(server.url) as client:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(lambda: client.call_tool("it_hold", {"seconds": 1}))
            await anyio.sleep(0.2)
            pids = {
                (await client.call_tool("whoami_asyncio", {})).structured_content["pid"] for _ in range(3)
            }
    assert new_pid in pids

    old_trio = server.worker("trio-0")["pid"]
    assert ctl("--port", port, "restart", "trio").returncode == 0
    assert server.worker("trio-0")["pid"] != old_trio

    refused = ctl("--port", port, "restart", "nonesuch")
    assert refused.returncode == 1 and "no runtime or worker called 'nonesuch'" in refused.stderr
    assert ctl("--port", port, "reload").returncode == 0
    assert ctl("--port", port, "frobnicate").returncode == 2

    stopped = ctl("--port", port, "stop")
    assert stopped.returncode == 0
    assert server.process.wait(20) == 0
    unreachable = ctl("--port", str(free_port()), "status")
    assert unreachable.returncode == 6 and "no supervisor is listening" in unreachable.stderr


def test_json_logs_are_one_object_per_line_with_the_worker(supervisor_factory: Any) -> None:
    server = supervisor_factory("--log-format", "json")
    server.stop()
    events = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert events and all({"time", "level", "logger", "message"} <= event.keys() for event in events)
    assert any(event.get("worker") == "trio-0" for event in events)


async def test_a_pool_scaled_to_zero_or_from_zero_is_ready_and_counters_survive_a_reload_issue_17(
    supervisor_factory: Any,
) -> None:
    """Issue 17: /readyz called a pool scaled to 0 not ready; a pool configured with 0 workers could not
    be scaled up ("pool 'asyncio' is not served here"), and that failed scale stayed in the settings, so
    the next `ctl scale` of another pool failed too; `worker_restarts_total` fell to 0 after a reload."""
    server = supervisor_factory(
        "--tools", "tests.integration.call_tools", "--workers-asyncio", "0", "--no-task-queue"
    )
    port = str(server.port)
    assert server.get("/readyz").json() == {"ready": True, "runtimes": {"trio": True}}
    restarts = ("mcp_supervisor_worker_restarts_total", (("runtime", "trio"), ("worker", "trio-0")))
    killed = server.worker("trio-0")["pid"]
    os.kill(killed, signal.SIGKILL)
    server.wait_for(
        lambda: (
            server.worker("trio-0")["pid"] not in (None, killed)
            and server.worker("trio-0")["state"] == "ready"
        ),
        "trio-0 to be replaced",
    )
    assert metric_samples(server.get("/metrics").text)[restarts] == 1

    scaled = ctl("--port", port, "scale", "asyncio", "1")
    assert scaled.returncode == 0, scaled.stderr
    async with Client(server.url) as client:
        answer = await client.call_tool("whoami_asyncio", {})
    assert answer.structured_content["pid"] == server.worker("asyncio-0")["pid"]
    assert server.get("/readyz").json() == {"ready": True, "runtimes": {"asyncio": True, "trio": True}}

    assert ctl("--port", port, "scale", "trio", "0").returncode == 0
    readiness = server.get("/readyz")
    assert readiness.status_code == 200 and readiness.json()["runtimes"] == {"asyncio": True}
    samples = metric_samples(server.get("/metrics").text)
    assert ("mcp_supervisor_runtime_ready", (("runtime", "trio"),)) not in samples
    assert "trio: scaled to 0" in ctl("--port", port, "status").stdout

    # a reload goes back to the configuration (trio 1, asyncio 0): trio-0's counter carries on
    assert ctl("--port", port, "reload").returncode == 0
    assert server.get("/readyz").json() == {"ready": True, "runtimes": {"trio": True}}
    assert metric_samples(server.get("/metrics").text)[restarts] == 1


async def test_a_second_supervisor_on_the_same_state_directory_gets_a_task_queue_of_its_own_issue_17(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    """Issue 17: a second instance on the same state directory crash-looped its task-queue worker with a
    40-line traceback and served 6 tools instead of 26. Now it says in one line which database it
    takes instead; a database named on the command line that is in use stops the start in one line."""
    env = {"XDG_STATE_HOME": str(tmp_path)}
    first = supervisor_factory(env=env, own_task_db=False)
    second = supervisor_factory(env=env, own_task_db=False)
    default = tmp_path / "mcp-supervisor" / "tasks.db"
    holder = first.worker("trio-queue")["pid"]
    assert (
        f"the task queue at {default} is in use by pid {holder}; this supervisor uses "
        f"{default.with_name('tasks-2.db')} (set task_db to choose)"
    ) in second.log()
    for server in (first, second):
        async with Client(server.url) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            submitted = await client.call_tool(
                "task_submit", {"task_type": "echo", "payload": {"message": "x"}}
            )
        assert {"task_submit", "workflow_submit", "echo"} <= names
        assert submitted.is_error is False, submitted
    assert "Traceback" not in second.log()

    refused = subprocess.run(
        [sys.executable, "-m", "supervisor", "--port", str(free_port()), "--task-db", str(default)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"mcp-supervisor: error: the task queue at {default} is in use by pid {holder}; "
        "use --task-db or --no-task-queue"
    )
