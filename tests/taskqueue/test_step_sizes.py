"""Issue 17: a workflow whose steps double their output built a 32 MB step input from a 3.2 KB
submission; the frame was lost, the step stayed running holding a queue slot, and task_status of that
task answered 65 MB. A step's input and output are now bounded when produced (``step_max_bytes``), and
large values are clipped in task_status and workflow_result, task_result giving them whole."""

from __future__ import annotations

from typing import Any

import pytest

from trio_worker.taskqueue.sizes import PREVIEW_BYTES

from .conftest import Target, serving, wait_workflow
from .fakes import FakeCall, FakeExecutor, ok, schema

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024


def doubling(fake: FakeExecutor) -> None:
    async def double(call: FakeCall) -> dict[str, Any]:
        return ok({"text": call.arguments["text"] * 2})

    fake.tool("double", schema({"text": {"type": "string"}}, ["text"]), double)


def chain(length: int, seed: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [{"step_id": "s0", "action": "double", "inputs": {"text": seed}}]
    for n in range(1, length):
        steps.append(
            {"step_id": f"s{n}", "action": "double", "inputs": {"text": f"${{steps.s{n - 1}.output.text}}"}}
        )
    return steps


async def test_a_step_whose_output_is_over_the_limit_fails_and_its_dependants_do_not_run(
    database: Target, fake: FakeExecutor
) -> None:
    doubling(fake)
    async with serving(database, fake, step_max_bytes=LIMIT) as engine:
        await engine.workflow_submit("doubling", chain(12, "x" * 3200), workflow_id="wf")
        await wait_workflow(engine, "wf", "failed")
        status = await engine.workflow_status("wf")
        steps = {s["step_id"]: s for s in status["steps"]}
        # 3200 -> 6400 -> ... -> 51200 -> 102400: the output of s4 is the first over 64 KiB
        assert [steps[f"s{n}"]["status"] for n in range(4)] == ["completed"] * 4
        assert steps["s4"]["status"] == "failed"
        assert steps["s4"]["error"].startswith("the output of step 's4' is 1024")
        assert "over the limit of 65536 bytes (workflow_step_max_bytes)" in steps["s4"]["error"]
        assert steps["s5"]["status"] == "failed" and "dependency 's4' failed" in steps["s5"]["error"]
        assert len(fake.calls_of("wf/s5")) == 0
        assert len(fake.calls) == 5  # nothing ran past the step that failed


async def test_a_step_whose_resolved_input_is_over_the_limit_fails_before_it_runs(
    database: Target, fake: FakeExecutor
) -> None:
    doubling(fake)
    steps = [
        {"step_id": "a", "action": "double", "inputs": {"text": "y" * 20000}},
        {
            "step_id": "b",
            "action": "echo",
            "inputs": {"message": "${steps.a.output.text}${steps.a.output.text}"},
        },
    ]
    async with serving(database, fake, step_max_bytes=LIMIT) as engine:
        await engine.workflow_submit("growing", steps, workflow_id="wf")
        await wait_workflow(engine, "wf", "failed")
        status = await engine.workflow_status("wf")
        b = next(s for s in status["steps"] if s["step_id"] == "b")
        assert b["status"] == "failed" and b["task_id"] is None
        assert "inputs is 80014 bytes of JSON, over the limit of 65536 bytes" in b["error"]
        assert not fake.calls_of("wf/b")


async def test_large_values_are_clipped_in_task_status_and_workflow_result_and_whole_in_task_result(
    database: Target, fake: FakeExecutor
) -> None:
    doubling(fake)
    steps = [
        {"step_id": "a", "action": "double", "inputs": {"text": "z" * 10000}},
        {"step_id": "b", "action": "double", "inputs": {"text": "${steps.a.output.text}"}},
    ]
    async with serving(database, fake) as engine:
        await engine.workflow_submit("large", steps, workflow_id="wf")
        await wait_workflow(engine, "wf", "completed")
        result = await engine.workflow_result("wf")
        clipped = result["outputs"]["b"]
        assert clipped["truncated"] is True and clipped["bytes"] == 40000 + len('{"text":""}')
        assert len(clipped["preview"]) == PREVIEW_BYTES
        assert clipped["whole"] == "task_result(task_id='wf/b')"
        assert result["final_outputs"] == {"b": clipped}
        assert (await engine.task_result("wf/b"))["output"] == {"text": "z" * 40000}

        payload = (await engine.task_status("wf/b"))["payload"]
        assert payload["truncated"] is True and payload["bytes"] == 20000 + len('{"text":""}')
        assert payload["whole"] == "task_result(task_id='wf/b', include_payload=true)"
        whole = await engine.task_result("wf/b", include_payload=True)
        assert whole["payload"] == {"text": "z" * 20000}
        assert (await engine.task_status("wf/a"))["payload"] == {"text": "z" * 10000}  # small: as is
