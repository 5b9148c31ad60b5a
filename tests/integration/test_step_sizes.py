"""Issue 17, against the real task-queue worker: a workflow whose steps double their output. Each step
repeats the previous output twice (``echo``), so a 3.2 KB submission grows past any limit in a few steps;
the workflow must fail with a clear error instead of leaving a step running forever."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from tests.integration.test_taskqueue import tool

pytestmark = pytest.mark.anyio


def doubling(length: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [{"step_id": "s0", "action": "echo", "inputs": {"message": "x" * 3200}}]
    for n in range(1, length):
        twice = f"${{steps.s{n - 1}.output}}${{steps.s{n - 1}.output}}"
        steps.append({"step_id": f"s{n}", "action": "echo", "inputs": {"message": twice}})
    return steps


async def failed_steps(client: Client, workflow_id: str) -> dict[str, dict[str, Any]]:
    with anyio.fail_after(30):
        while True:
            status = await tool(client, "workflow_status", workflow_id=workflow_id)
            if status["status"] in ("completed", "failed", "cancelled"):
                break
            await anyio.sleep(0.1)
    assert status["status"] == "failed"
    return {s["step_id"]: s for s in status["steps"] if s["status"] == "failed"}


async def test_issue_17_a_step_input_over_workflow_step_max_bytes_fails_the_step(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory("--no-pin", env={"MCP_SUPERVISOR_WORKFLOW_STEP_MAX_BYTES": "65536"})
    async with Client(server.url) as client:
        submitted = await tool(client, "workflow_submit", name="doubling", steps=doubling(12))
        failed = await failed_steps(client, submitted["workflow_id"])
        # inputs: 3200, 6400, ..., 51200, 102400: s5's is the first over 64 KiB
        assert (
            "inputs is 102414 bytes of JSON, over the limit of 65536 bytes (workflow_step_max_bytes)"
            in (failed["s5"]["error"])
        )
        assert failed["s5"]["task_id"] is None  # never queued
        payload = (await tool(client, "task_status", task_id=f"{submitted['workflow_id']}/s4"))["payload"]
        assert payload["truncated"] is True and payload["bytes"] == 51200 + len('{"message":""}')


async def test_issue_17_a_step_input_over_max_message_size_fails_the_step_at_once(
    supervisor_factory: Any,
) -> None:
    """The step limit above the frame limit: the 32 MB case of the issue, scaled down. The step input left
    the queue worker as one REQUEST over ``max_message_size``, was dropped, and the step stayed running."""
    server = supervisor_factory(
        "--no-pin",
        env={
            "MCP_SUPERVISOR_WORKFLOW_STEP_MAX_BYTES": str(1 << 30),
            "MCP_SUPERVISOR_MAX_MESSAGE_SIZE": str(1 << 20),
            "MCP_SUPERVISOR_MAX_BODY_SIZE": str(1 << 19),
        },
    )
    async with Client(server.url) as client:
        submitted = await tool(client, "workflow_submit", name="doubling", steps=doubling(12))
        failed = await failed_steps(client, submitted["workflow_id"])
        first = min(failed, key=lambda step_id: int(step_id[1:]))
        assert first == "s9"  # 3200 × 2⁹ = 1638400 characters: the first input over 1 MiB
        assert "would take" in failed[first]["error"]
        assert "over the limit of 1048576 bytes (max_message_size)" in failed[first]["error"]
