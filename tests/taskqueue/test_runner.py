"""How an attempt runs and ends (``runner.py``): the timeout passed to the call, progress reports,
"server busy" answers and calls the router refuses."""

from __future__ import annotations

from typing import Any

import pytest

from trio_worker.taskqueue import scheduling as scheduling_module

from .conftest import Target, eventually, serving, wait_status
from .fakes import FakeCall, FakeExecutor, error, ok, schema

pytestmark = pytest.mark.anyio


async def test_a_task_timeout_is_passed_to_the_call_and_fails_the_task(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        answer = await engine.task_submit("forever", {"key": "t"}, timeout=0.05)
        status = await wait_status(engine, answer["task_id"], "failed")
        assert status["error"] == "tool 'forever' timed out after 0.05 s"
        assert status["timeout"] == 0.05
    [call] = fake.calls_of("t")
    assert call.timeout == 0.05 and call.outcome == "timed out"


async def test_progress_reports_become_percentages_and_log_lines(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        answer = await engine.task_submit("progress", {"key": "p"})

        async def at(percent: float) -> bool:
            return (await engine.task_status(answer["task_id"]))["progress"] == percent

        await eventually(lambda: at(25.0), "25 %")
        assert (await engine.task_status(answer["task_id"]))["progress_message"] == "one quarter"
        fake.release("p")
        await eventually(lambda: at(75.0), "75 %")
        fake.release("p:end")
        done = await wait_status(engine, answer["task_id"], "completed")
        assert done["progress"] == 100.0
        logs = (await engine.task_status(answer["task_id"], include_logs=True))["logs"]
        assert [line["message"] for line in logs if line["message"].startswith("progress")] == [
            "progress (25%): one quarter",
            "progress (75%): three quarters",
        ]


async def test_server_busy_answers_are_retried_without_counting_attempts(
    database: Target, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduling_module, "BUSY_BACKOFF", 0.005)
    async with serving(database, fake) as engine:
        answer = await engine.task_submit("busy", {"key": "b", "times": 2})
        done = await wait_status(engine, answer["task_id"], "completed")
        assert done["attempts"] == 1 and done["max_retries"] == 0
    assert len(fake.calls_of("b")) == 3


async def test_issue_17_a_quarantined_tools_refusal_holds_the_task_back_without_counting_an_attempt(
    database: Target, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """task_submit of a quarantined tool is accepted (the queue runs work later; a quarantine ends by
    itself): each attempt the router refuses goes back to the queue, not counted, and the task's log says
    why; once the quarantine is over the task runs. A tool's own failure is not mistaken for one."""
    monkeypatch.setattr(scheduling_module, "BUSY_BACKOFF", 0.005)
    refusal = (
        "tool 'crashy' is quarantined: its worker died 3 times within 60 s while running it; "
        "it will be tried again in 300 s (at 2026-01-01T00:05:00Z)"
    )

    async def crashy(call: FakeCall) -> dict[str, Any]:
        seen = call.executor.failures.get(call.key, 0)
        call.executor.failures[call.key] = seen + 1
        if call.arguments["as"] == "tool" or seen >= 2:
            return error(f"tool 'crashy' failed: {refusal}") if call.arguments["as"] == "tool" else ok({})
        return error(refusal)

    fake.tool("crashy", schema({"key": {"type": "string"}, "as": {"type": "string"}}), crashy)
    async with serving(database, fake) as engine:
        held = await engine.task_submit("crashy", {"key": "q", "as": "router"})
        done = await wait_status(engine, held["task_id"], "completed")
        assert done["attempts"] == 1 and done["max_retries"] == 0
        logs = (await engine.task_status(held["task_id"], include_logs=True))["logs"]
        assert sum(line["message"].startswith(refusal + "; trying again in") for line in logs) == 2
        failing = await engine.task_submit("crashy", {"key": "t", "as": "tool"})
        failed = await wait_status(engine, failing["task_id"], "failed")
        assert failed["attempts"] == 1
    assert len(fake.calls_of("q")) == 3 and len(fake.calls_of("t")) == 1


async def test_a_call_the_router_refuses_fails_at_once_without_retries(
    database: Target, fake: FakeExecutor
) -> None:
    fake.catalog["ghost"] = dict(fake.catalog["text"], name="ghost")  # listed, but every call is refused
    fake.worker_list[0]["tools"].append("ghost")
    async with serving(database, fake) as engine:
        answer = await engine.task_submit(
            "ghost", {}, retry_policy={"max_retries": 3, "backoff_factor": 0.001}
        )
        failed = await wait_status(engine, answer["task_id"], "failed")
        assert failed["attempts"] == 1
        assert failed["error"] == "refused by the router: unknown tool 'ghost'"
