"""The task queue and workflow tools through MCP, against the real trio-queue worker and real workers."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import RunningSupervisor, spawn_supervisor, text

pytestmark = pytest.mark.anyio
TERMINAL = {"completed", "failed", "cancelled"}


async def tool(client: Client, tool_name: str, /, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool_name, arguments)
    assert result.is_error is False, f"{tool_name}: {text(result)}"
    assert result.structured_content is not None
    return result.structured_content


async def wait_for_task(
    client: Client, task_id: str, wanted: set[str] = TERMINAL, deadline: float = 20
) -> dict[str, Any]:
    with anyio.fail_after(deadline):
        while True:
            status = await tool(client, "task_status", task_id=task_id)
            if status["status"] in wanted:
                return status
            await anyio.sleep(0.05)


async def test_every_queue_tool_through_mcp(supervisor_factory: Any, tmp_path: Path) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    async with Client(server.url) as client:
        submitted = await tool(
            client, "task_submit", task_type="echo", payload={"message": "hi"}, tags=["a", "b"]
        )
        assert submitted["success"] is True
        task_id = submitted["task_id"]
        assert (await wait_for_task(client, task_id))["status"] == "completed"
        assert (await tool(client, "task_result", task_id=task_id))["output"] == "hi"
        listed = await tool(client, "task_list", tag_filter=["a", "b"])
        assert listed["total_count"] == 1 and listed["tasks"][0]["task_id"] == task_id
        assert (await tool(client, "queue_stats"))["counts"]["completed"] >= 1

        paused = await tool(client, "queue_pause", reason="maintenance")
        assert paused["success"] is True
        queued = (
            await tool(client, "task_submit", task_type="echo", payload={"message": "later"}, priority=1.0)
        )["task_id"]
        urgent = (
            await tool(client, "task_submit", task_type="echo", payload={"message": "first"}, priority=9.0)
        )["task_id"]
        assert (await tool(client, "task_status", task_id=queued))["status"] == "queued"
        moved = await tool(client, "task_priority", task_id=queued, new_priority=5.0)
        assert (
            moved["old_priority"] == 1.0 and moved["new_priority"] == 5.0 and moved["new_queue_position"] == 2
        )
        await tool(client, "queue_resume")
        first, second = await wait_for_task(client, urgent), await wait_for_task(client, queued)
        assert first["start_time"] <= second["start_time"]

        failing = (await tool(client, "task_submit", task_type="it_fail", payload={"message": "boom"}))[
            "task_id"
        ]
        assert (await wait_for_task(client, failing))["status"] == "failed"
        retried = await tool(client, "task_retry", task_id=failing)
        assert retried["retry_task_id"] != failing and retried["retry_count"] == 1
        assert (await wait_for_task(client, retried["retry_task_id"]))["status"] == "failed"

        registered = await tool(
            client, "worker_register", worker_id="gpu-box", capabilities=["render"], max_concurrent_tasks=2
        )
        assert registered["success"] is True
        workers = {w["worker_id"]: w for w in (await tool(client, "worker_status"))["workers"]}
        assert workers["asyncio-0"]["live"] is True and "echo" in workers["asyncio-0"]["capabilities"]
        assert workers["gpu-box"]["live"] is False
        assert (await tool(client, "worker_unregister", worker_id="gpu-box"))["success"] is True

        refused = await client.call_tool("queue_clear", {"status_filter": ["completed"]})
        assert refused.is_error is True and "confirm" in text(refused)
        cleared = await tool(client, "queue_clear", status_filter=["completed"], confirm=True)
        assert cleared["success"] is True

        workflow = await tool(
            client,
            "workflow_submit",
            name="diamond",
            steps=[
                {"step_id": "top", "action": "it_add", "inputs": {"a": 1, "b": 2}},
                {
                    "step_id": "left",
                    "action": "it_add",
                    "inputs": {"a": "${steps.top.output.sum}", "b": 10},
                    "depends_on": ["top"],
                },
                {
                    "step_id": "right",
                    "action": "it_add",
                    "inputs": {"a": "${steps.top.output.sum}", "b": 100},
                    "depends_on": ["top"],
                },
                {
                    "step_id": "bottom",
                    "action": "echo",
                    "inputs": {"message": "left=${steps.left.output.sum} right=${steps.right.output.sum}"},
                    "depends_on": ["left", "right"],
                },
            ],
        )
        workflow_id = workflow["workflow_id"]
        with anyio.fail_after(20):
            while (status := await tool(client, "workflow_status", workflow_id=workflow_id))[
                "status"
            ] not in TERMINAL:
                await anyio.sleep(0.05)
        assert status["status"] == "completed"
        outputs = (await tool(client, "workflow_result", workflow_id=workflow_id))["outputs"]
        assert outputs["bottom"] == "left=13 right=103"
        assert any(
            w["workflow_id"] == workflow_id for w in (await tool(client, "workflow_list"))["workflows"]
        )
        mermaid = await tool(client, "workflow_dependencies", workflow_id=workflow_id, format="mermaid")
        assert mermaid["dag"].startswith("flowchart") and "s0 --> s1" in mermaid["dag"]
        path = mermaid["critical_path"]["steps"]
        assert path[0] == "top" and path[-1] == "bottom" and len(path) == 3
        dot = await tool(client, "workflow_dependencies", workflow_id=workflow_id, format="dot")
        assert dot["dag"].lstrip().startswith("digraph") and '"left" -> "bottom"' in dot["dag"]

        cycle = await client.call_tool(
            "workflow_submit",
            {
                "name": "loop",
                "steps": [
                    {"step_id": "a", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["b"]},
                    {"step_id": "b", "action": "echo", "inputs": {"message": "y"}, "depends_on": ["a"]},
                ],
            },
        )
        assert cycle.is_error is True and "cycle" in text(cycle)
        bad_payload = await client.call_tool("task_submit", {"task_type": "it_add", "payload": {"a": "one"}})
        assert bad_payload.is_error is True and "a" in text(bad_payload)
        unknown = await client.call_tool("task_submit", {"task_type": "no_such_tool", "payload": {}})
        assert unknown.is_error is True and "no_such_tool" in text(unknown)

        held = await tool(
            client,
            "workflow_submit",
            name="to-cancel",
            steps=[
                {"step_id": "wait", "action": "it_hold", "inputs": {"seconds": 30}},
            ],
        )
        await anyio.sleep(0.2)
        cancelled = await tool(client, "workflow_cancel", workflow_id=held["workflow_id"], reason="test")
        assert cancelled["success"] is True


async def test_cancelling_a_running_task_reaches_the_tool(supervisor_factory: Any, tmp_path: Path) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    marker = tmp_path / "cancelled"
    async with Client(server.url) as client:
        task_id = (
            await tool(
                client, "task_submit", task_type="it_wait_for_cancel_trio", payload={"marker": str(marker)}
            )
        )["task_id"]
        await wait_for_task(client, task_id, {"running"})
        with anyio.fail_after(10):
            while (await tool(client, "task_status", task_id=task_id))["progress"] is None:
                await anyio.sleep(0.05)
        await tool(client, "task_cancel", task_id=task_id, reason="no longer needed")
        assert (await wait_for_task(client, task_id))["status"] == "cancelled"
    server.wait_for(marker.exists, "the tool to observe the cancellation", deadline=10)


async def test_every_task_survives_a_kill_9_of_the_whole_supervisor(tmp_path: Path) -> None:
    """A few hundred tasks; SIGKILL the supervisor while they run; a new supervisor on the same database
    brings every task to exactly one terminal state."""
    database = str(tmp_path / "tasks.db")
    args = ("--tools", "tests.integration.call_tools", "--task-db", database)
    first = spawn_supervisor(*args)
    total = 300
    try:
        async with Client(first.url, mode="2026-07-28") as client:
            ids = [
                (
                    await tool(
                        client,
                        "task_submit",
                        task_type="it_hold",
                        payload={"seconds": 0.02},
                        retry_policy={"max_retries": 2, "backoff_factor": 0.01},
                    )
                )["task_id"]
                for _ in range(total)
            ]
            with anyio.fail_after(30):
                while (await tool(client, "queue_stats"))["counts"]["completed"] < 20:
                    await anyio.sleep(0.05)
    finally:
        first.stop(signal.SIGKILL)
    second: RunningSupervisor = spawn_supervisor(*args)
    try:
        async with Client(second.url, mode="2026-07-28") as client:
            with anyio.fail_after(90):
                while True:
                    counts = (await tool(client, "queue_stats"))["counts"]
                    if counts.get("queued", 0) == 0 and counts.get("running", 0) == 0:
                        break
                    await anyio.sleep(0.2)
            seen: dict[str, str] = {}
            for status in sorted(TERMINAL):
                listed = await tool(client, "task_list", status_filter=[status], limit=1000)
                for task in listed["tasks"]:
                    assert task["task_id"] not in seen, (
                        f"{task['task_id']} is both {seen[task['task_id']]} and {status}"
                    )
                    seen[task["task_id"]] = status
        assert set(seen) == set(ids)
        assert sum(1 for status in seen.values() if status == "completed") >= total - 5
    finally:
        second.stop()
