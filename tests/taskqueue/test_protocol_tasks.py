"""Protocol tasks (MCP tasks) on the engine: create, the runs and how they end, input_required and
tasks:update, cancel in every state, the errors, and the one engine they share with the 20 tools."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio

from shared.errors import INVALID_PARAMS, ClientRequestError
from trio_worker.taskqueue import Engine, ToolCallRefused
from trio_worker.taskqueue.errors import ConflictError, InvalidRequestError
from trio_worker.taskqueue.schema import TABLES

from .conftest import Target, eventually, select, serving
from .fakes import FakeCall, FakeExecutor, ok, schema

pytestmark = pytest.mark.anyio

CLIENT = {"capabilities": {"elicitation": {}}, "protocolVersion": "2026-07-28"}
RELATED = "io.modelcontextprotocol/related-task"


def add_protocol_tools(fake: FakeExecutor) -> None:
    async def asks(call: FakeCall) -> dict[str, Any]:
        answers = (call.task_input or {}).get("answers", {})
        missing = [key for key in ("a", "b") if key not in answers]
        if missing:
            return {
                "resultType": "input_required",
                "inputRequests": {
                    key: {"method": "elicitation/create", "params": {"message": key}} for key in missing
                },
                "asked": {key: f"digest-{key}" for key in missing},
            }
        return ok({key: answers[key]["r"]["content"] for key in ("a", "b")})

    async def refused(call: FakeCall) -> dict[str, Any]:
        raise ToolCallRefused("arguments refused", INVALID_PARAMS, {"field": "x"})

    async def broken(call: FakeCall) -> dict[str, Any]:
        raise RuntimeError("executor\nbroke")

    async def meta(call: FakeCall) -> dict[str, Any]:
        return {"content": [], "isError": True, "_meta": {RELATED: {"taskId": "x"}, "other": 1}}

    fake.tool("asks", schema({}), asks)
    fake.tool("refused", schema({}), refused)
    fake.tool("broken", schema({}), broken)
    fake.tool("meta", schema({}), meta)


async def create(engine: Engine, tool: str, arguments: dict[str, Any] | None = None, **kw: Any) -> str:
    task = await engine.protocol_create(tool, arguments or {}, CLIENT, **kw)
    return str(task["taskId"])


async def wait_wire(engine: Engine, task_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        view = await engine.protocol_get(task_id)
        return view if view["status"] == status else None

    return await eventually(check, f"task {task_id} to be {status}")


def row(database: Target, task_id: str) -> dict[str, Any] | None:
    names = [name for name, *_ in TABLES["tasks"]]
    found = select(database, f"SELECT {', '.join(names)} FROM tasks WHERE task_id = ?", task_id)
    return dict(zip(names, found[0], strict=True)) if found else None


async def test_create_commits_before_it_answers_the_task_fields_only(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause("hold")
        task = await engine.protocol_create(
            "echo", {"message": "hi"}, CLIENT, {"k": {"q": None, "r": {}}}, True
        )
        assert re.fullmatch(r"mcp-[A-Za-z0-9_-]{24}", task["taskId"])
        assert task["status"] == "working" and task["pollIntervalMs"] == 1000 and task["ttlMs"] >= 3_600_000
        assert set(task) == {"taskId", "status", "createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"}
        stored = row(database, task["taskId"])  # on disk before the answer
        assert stored is not None and stored["origin"] == "mcp" and stored["run_again"] == 1
        assert stored["status"] == "queued"
        status = await engine.task_status(task["taskId"])
        assert status["origin"] == "mcp" and status["waiting_reason"] == "the queue is paused: hold"
        assert fake.calls == []  # the pause holds protocol tasks too


async def test_a_run_gets_the_client_and_answers_and_its_result_completes_the_task(
    database: Target, fake: FakeExecutor
) -> None:
    add_protocol_tools(fake)
    async with serving(database, fake) as engine:
        task_id = await create(engine, "echo", {"message": "hi"}, answers={"x": {"q": "d", "r": {"v": 1}}})
        done = await wait_wire(engine, task_id, "completed")
        assert done["result"]["structuredContent"] == {"message": "hi"}
        assert "error" not in done and "inputRequests" not in done and "requestState" not in done
        assert fake.calls[0].task_input == {"client": CLIENT, "answers": {"x": {"q": "d", "r": {"v": 1}}}}


async def test_a_tool_error_is_a_result_never_retried_and_its_related_task_meta_is_stripped(
    database: Target, fake: FakeExecutor
) -> None:
    add_protocol_tools(fake)
    async with serving(database, fake) as engine:
        task_id = await create(engine, "meta")
        done = await wait_wire(engine, task_id, "completed")
        assert done["result"] == {"content": [], "isError": True, "_meta": {"other": 1}}
        assert len(fake.calls) == 1


@pytest.mark.parametrize(
    ("tool", "error"),
    [
        ("refused", {"code": INVALID_PARAMS, "message": "arguments refused", "data": {"field": "x"}}),
        ("broken", {"code": -32603, "message": "RuntimeError: executor broke"}),
    ],
)
async def test_a_protocol_error_fails_the_task_with_its_error_object(
    database: Target, fake: FakeExecutor, tool: str, error: dict[str, Any]
) -> None:
    add_protocol_tools(fake)
    async with serving(database, fake) as engine:
        task_id = await create(engine, tool)
        failed = await wait_wire(engine, task_id, "failed")
        assert failed["error"] == error and failed["statusMessage"] == error["message"]
        assert "result" not in failed


async def test_input_required_parks_the_task_and_updates_resume_it_with_every_answer(
    database: Target, fake: FakeExecutor
) -> None:
    add_protocol_tools(fake)
    async with serving(database, fake) as engine:
        task_id = await create(engine, "asks")
        parked = await wait_wire(engine, task_id, "input_required")
        assert set(parked["inputRequests"]) == {"a", "b"}
        assert parked["inputRequests"]["a"] == {"method": "elicitation/create", "params": {"message": "a"}}
        assert (await engine.task_status(task_id))["status"] == "input_required"
        assert (await engine.queue_stats())["counts"]["input_required"] == 1
        # one answer and an unknown key: still waiting for the other
        assert await engine.protocol_update(task_id, {"a": {"content": 1}, "zzz": {}}) == {}
        partial = await engine.protocol_get(task_id)
        assert partial["status"] == "input_required" and set(partial["inputRequests"]) == {"b"}
        assert len(fake.calls) == 1
        await engine.protocol_update(task_id, {"b": {"content": 2}})
        done = await wait_wire(engine, task_id, "completed")
        assert done["result"]["structuredContent"] == {"a": 1, "b": 2}
        assert len(fake.calls) == 2
        assert fake.calls[1].task_input is not None
        assert fake.calls[1].task_input["answers"] == {
            "a": {"q": "digest-a", "r": {"content": 1}},
            "b": {"q": "digest-b", "r": {"content": 2}},
        }
        # an update of a task in another state is acknowledged and changes nothing
        assert await engine.protocol_update(task_id, {"a": {}}) == {}
        assert (await engine.protocol_get(task_id))["status"] == "completed"


async def test_cancel_in_every_state(database: Target, fake: FakeExecutor) -> None:
    add_protocol_tools(fake)
    async with serving(database, fake) as engine:
        asking = await create(engine, "asks")
        await wait_wire(engine, asking, "input_required")
        running = await create(engine, "slow_cleanup", {"key": "S"})
        call = await fake.wait_started("S")
        finished = await create(engine, "echo", {"message": "done"})
        await wait_wire(engine, finished, "completed")
        await engine.queue_pause()
        queued = await create(engine, "echo", {"message": "never"})

        for task_id in (queued, asking, running, finished):
            assert await engine.protocol_cancel(task_id) == {}
        for task_id in (queued, asking, running):
            cancelled = await engine.protocol_get(task_id)
            assert cancelled["status"] == "cancelled"
            assert cancelled["statusMessage"] == "cancelled by tasks/cancel"
        assert (await engine.protocol_get(finished))["status"] == "completed"
        # the running call is being cancelled in its worker; its slot is held until it stops
        await eventually(lambda: call.outcome == "cleaning up", "the call to be cancelled")
        assert "fake-0" in {r.executor_id for r in engine._runner.running.values()}
        fake.release("S:cleanup")
        await eventually(lambda: not engine._runner.running, "the slot to be freed")
        assert [c.key for c in fake.calls].count("never") == 0


async def test_unknown_ids_and_queue_task_ids_answer_unknown_task(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        queue_task = (await engine.task_submit("echo", {"message": "q"}))["task_id"]
        for task_id in ("mcp-nope", queue_task, "", "x" * 300):
            for operation in (
                engine.protocol_get(task_id),
                engine.protocol_cancel(task_id),
                engine.protocol_update(task_id, {}),
            ):
                with pytest.raises(ClientRequestError) as caught:
                    await operation
                assert caught.value.code == INVALID_PARAMS
                assert str(caught.value) == f"unknown task '{task_id}'"


async def test_a_task_is_unknown_to_every_principal_but_the_one_that_made_it(
    database: Target, fake: FakeExecutor
) -> None:
    add_protocol_tools(fake)
    owned = {**CLIENT, "principal": {"subject": "alice", "scopes": [], "claims": {}}}
    async with serving(database, fake) as engine:
        task_id = str((await engine.protocol_create("asks", {}, owned))["taskId"])
        await eventually(lambda: _status_of(engine, task_id, "alice"), f"task {task_id} to wait for input")
        for owner in ("bob", None):  # another principal, and a caller without one
            for operation in (
                engine.protocol_get(task_id, owner),
                engine.protocol_cancel(task_id, owner),
                engine.protocol_update(task_id, {}, owner),
            ):
                with pytest.raises(ClientRequestError) as caught:
                    await operation
                assert str(caught.value) == f"unknown task '{task_id}'"
        assert await engine.protocol_cancel(task_id, "alice") == {}
        assert (await engine.protocol_get(task_id, "alice"))["status"] == "cancelled"
        with pytest.raises(ClientRequestError):  # ended, from the cache of ended tasks: still bound
            await engine.protocol_get(task_id, "bob")


async def _status_of(engine: Engine, task_id: str, owner: str) -> bool:
    return (await engine.protocol_get(task_id, owner))["status"] == "input_required"


async def test_the_queue_tools_see_protocol_tasks_but_do_not_retry_or_clear_what_waits_for_input(
    database: Target, fake: FakeExecutor
) -> None:
    add_protocol_tools(fake)
    async with serving(database, fake) as engine:
        failed = await create(engine, "broken")
        await wait_wire(engine, failed, "failed")
        with pytest.raises(ConflictError, match="is an MCP task"):
            await engine.task_retry(failed)
        asking = await create(engine, "asks")
        await wait_wire(engine, asking, "input_required")
        with pytest.raises(InvalidRequestError, match="input_required tasks cannot be cleared"):
            await engine.queue_clear(["input_required"], confirm=True)
        listed = await engine.task_list(status_filter="input_required")
        assert [t["task_id"] for t in listed["tasks"]] == [asking]
        assert (await engine.task_cancel(asking))["success"] is True
        assert (await engine.protocol_get(asking))["status"] == "cancelled"


async def test_status_changes_and_progress_messages_reach_the_hook(
    database: Target, fake: FakeExecutor
) -> None:
    add_protocol_tools(fake)
    seen: list[dict[str, Any]] = []
    async with serving(database, fake, on_protocol_change=seen.append) as engine:
        task_id = await create(engine, "progress", {"key": "P"})
        await fake.wait_started("P")
        first = await eventually(
            lambda: next((v for v in seen if v.get("statusMessage") == "one quarter (25%)"), None),
            "the progress message to be told",
        )
        assert first["status"] == "working" and first["taskId"] == task_id
        live = await engine.protocol_get(task_id)
        assert live["statusMessage"] == "one quarter (25%)"
        fake.release("P")
        fake.release("P:end")
        await wait_wire(engine, task_id, "completed")
        assert seen[-1]["status"] == "completed" and seen[-1]["result"]["structuredContent"] == {"key": "P"}
        asking = await create(engine, "asks")
        await wait_wire(engine, asking, "input_required")
        assert any(v["taskId"] == asking and v["status"] == "input_required" for v in seen)
        assert not any(v["taskId"] == asking and v["status"] == "working" for v in seen)  # not its creation


async def test_a_failing_hook_never_breaks_the_engine(database: Target, fake: FakeExecutor) -> None:
    def hook(view: dict[str, Any]) -> None:
        raise RuntimeError("hook broke")

    async with serving(database, fake, on_protocol_change=hook) as engine:
        task_id = await create(engine, "echo", {"message": "hi"})
        await wait_wire(engine, task_id, "completed")


async def test_many_concurrent_creates_share_group_commits(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        await engine.queue_pause()
        before = engine.batches
        ids: list[str] = []

        async def one() -> None:
            ids.append(await create(engine, "echo", {"message": "m"}))

        async with trio.open_nursery() as nursery:
            for _ in range(64):
                nursery.start_soon(one)
        assert len(set(ids)) == 64
        assert engine.batches - before < 64
        assert (await engine.queue_stats())["counts"]["queued"] == 64
