"""What a protocol task outlives and what it does not: recovery after a crash (run again only when its
tool is idempotent or read-only), TTL expiry and the sweep, the queue's retention, the v1 -> v2 migration,
and the wire rendering of every status."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shared.errors import INVALID_PARAMS, ClientRequestError
from trio_worker.taskqueue import Engine
from trio_worker.taskqueue.protocol_view import detailed_view, task_view
from trio_worker.taskqueue.records import TaskRecord
from trio_worker.taskqueue.retention import sweep_interval
from trio_worker.taskqueue.rows import columns
from trio_worker.taskqueue.schema import SCHEMA_VERSION

from .conftest import Target, expire_leases, select, serving, wait_status, wait_workflow
from .fakes import FakeExecutor, ManualClock, standard_executor
from .test_protocol_tasks import CLIENT, add_protocol_tools, create, wait_wire

pytestmark = pytest.mark.anyio


def count(database: Target, sql: str, *params: Any) -> int:
    return int(select(database, sql, *params)[0][0])


async def test_recovery_runs_again_only_what_may_run_again(database: Target) -> None:
    first = standard_executor()
    add_protocol_tools(first)
    async with serving(database, first) as engine:
        again = await create(engine, "gate", {"key": "again"}, run_again=True)
        once = await create(engine, "gate", {"key": "once"}, run_again=False)
        asking = await create(engine, "asks")
        await wait_wire(engine, asking, "input_required")
        await engine.queue_pause()
        queued = await create(engine, "echo", {"message": "later"})
        await first.wait_started("again")
        await first.wait_started("once")
    expire_leases(database)
    # the engine died mid-run (nothing more written): a new one opens the same database
    second = standard_executor()
    add_protocol_tools(second)
    second.release("again")
    async with serving(database, second) as engine:
        failed = await engine.protocol_get(once)
        assert failed["status"] == "failed"
        assert failed["error"] == {
            "code": -32603,
            "message": f"the server restarted while task {once} was running; tool 'gate' is neither "
            "idempotent nor read-only, so it was not run again",
        }
        assert (await engine.protocol_get(asking))["status"] == "input_required"
        assert (await engine.protocol_get(queued))["status"] == "working"
        assert (await engine.task_status(queued))["status"] == "queued"  # still paused
        await engine.queue_resume()
        done = await wait_wire(engine, again, "completed")
        assert done["result"]["structuredContent"]["key"] == "again"
        metrics = (await engine.task_status(again, include_metrics=True))["metrics"]
        assert [a["outcome"] for a in metrics["attempts"]] == ["interrupted", "completed"]
        assert second.calls_of("once") == []  # never run twice
        await wait_wire(engine, queued, "completed")
        await engine.protocol_update(asking, {"a": {"content": 1}, "b": {"content": 2}})
        await wait_wire(engine, asking, "completed")


async def test_an_ended_task_expires_after_its_ttl_and_the_sweep_deletes_it(
    database: Target, fake: FakeExecutor
) -> None:
    clock = ManualClock()
    async with serving(database, fake, clock=clock, task_ttl=60, task_retention=0) as engine:
        ended = await create(engine, "echo", {"message": "hi"})
        done = await wait_wire(engine, ended, "completed")
        assert done["ttlMs"] == 60_000  # ended at its creation time on this clock
        running = await create(engine, "gate", {"key": "G"})
        await fake.wait_started("G")
        clock.advance(61)
        with pytest.raises(ClientRequestError) as caught:
            await engine.protocol_get(ended)  # expired before any sweep
        assert caught.value.code == INVALID_PARAMS and str(caught.value) == f"task '{ended}' has expired"
        with pytest.raises(ClientRequestError, match="has expired"):
            await engine.protocol_cancel(ended)
        assert count(database, "SELECT COUNT(*) FROM tasks WHERE task_id = ?", ended) == 1
        live = await engine.protocol_get(running)  # never expires while unfinished
        assert live["status"] == "working" and live["ttlMs"] == 121_000
        assert await engine.sweep() == 1
        for table in ("tasks", "attempts", "task_logs"):
            assert count(database, f"SELECT COUNT(*) FROM {table} WHERE task_id = ?", ended) == 0
        with pytest.raises(ClientRequestError, match=f"^unknown task '{ended}'$"):
            await engine.protocol_get(ended)
        fake.release("G")
        await wait_wire(engine, running, "completed")


async def test_queue_retention_deletes_finished_tasks_and_workflows_but_not_unfinished_ones(
    database: Target, fake: FakeExecutor
) -> None:
    clock = ManualClock()
    async with serving(database, fake, clock=clock, task_ttl=0, task_retention=100) as engine:
        done = (await engine.task_submit("echo", {"message": "old"}))["task_id"]
        await wait_status(engine, done, "completed")
        await engine.workflow_submit(
            "w", [{"step_id": "s", "action": "echo", "inputs": {"message": "x"}}], workflow_id="wf"
        )
        await wait_workflow(engine, "wf", "completed")
        protocol = await create(engine, "echo", {"message": "kept"})
        await wait_wire(engine, protocol, "completed")
        await engine.queue_pause()
        waiting = (await engine.task_submit("echo", {"message": "queued"}))["task_id"]
        clock.advance(101)
        assert await engine.sweep() == 2  # the task and the workflow's step task
        assert count(database, "SELECT COUNT(*) FROM workflows") == 0
        assert count(database, "SELECT COUNT(*) FROM steps") == 0
        assert count(database, "SELECT COUNT(*) FROM tasks WHERE task_id = ?", waiting) == 1
        assert (await engine.protocol_get(protocol))["ttlMs"] is None  # task_ttl 0: kept forever


def test_the_sweep_interval_follows_the_shorter_ttl() -> None:
    assert sweep_interval(3600, 604800) == 60.0
    assert sweep_interval(8, 0) == 2.0
    assert sweep_interval(0.5, 0) == 1.0
    assert sweep_interval(0, 0) is None


async def test_a_version_1_sqlite_database_is_migrated(tmp_path: Path, fake: FakeExecutor) -> None:
    new = {"origin", "client", "answers", "pending", "asked", "run_again", "updated_at", "error_object"}
    new |= {"rev", "claimed_by", "cancel_requested"}  # version 3
    old = [name for name in columns(TaskRecord) if name not in new]
    database = tmp_path / "state" / "queue.db"
    database.parent.mkdir(parents=True)
    with closing(sqlite3.connect(database)) as conn:
        conn.execute(f"CREATE TABLE tasks ({', '.join(old)}, PRIMARY KEY (task_id))")
        values = {name: 0 for name in old}
        values.update(
            task_id="old-1", task_type="echo", payload='{"message": "x"}', tags="[]", metadata="{}",
            status="completed", backoff="exponential", result=None, error=None, ended_at=5.0,
        )  # fmt: skip
        conn.execute(
            f"INSERT INTO tasks ({', '.join(old)}) VALUES ({', '.join('?' * len(old))})",
            list(values.values()),
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    async with serving(database, fake, task_retention=0) as engine:
        status = await engine.task_status("old-1")
        assert status["origin"] == "queue" and status["status"] == "completed"
        with pytest.raises(ClientRequestError, match="unknown task"):
            await engine.protocol_get("old-1")
        task_id = await create(engine, "echo", {"message": "new"})
        await wait_wire(engine, task_id, "completed")
    assert count(database, "PRAGMA user_version") == SCHEMA_VERSION == 3
    assert {"rev", "claimed_by", "cancel_requested", "lease_expires"} <= {
        row[1] for row in select(database, "PRAGMA table_info(tasks)")
    }


def record(**fields: Any) -> TaskRecord:
    base = TaskRecord(
        task_id="mcp-x", seq=1, task_type="t", payload={}, priority=1.0, order_priority=1.0, order_seq=1,
        tags=[], timeout=None, max_retries=0, backoff_factor=1.0, backoff="exponential", metadata={},
        status="queued", submitted_at=1_750_000_000.0, queued_at=1_750_000_000.0, origin="mcp",
        updated_at=1_750_000_001.0,
    )  # fmt: skip
    return replace(base, **fields)


NOW = 1_750_000_010.0


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "queued"}, {"status": "working"}),
        ({"status": "running"}, {"status": "working", "statusMessage": "copying (40%)"}),
        (
            {"status": "input_required", "pending": {"k": {"method": "sampling/createMessage"}}},
            {"status": "input_required", "inputRequests": {"k": {"method": "sampling/createMessage"}}},
        ),
        (
            {"status": "completed", "ended_at": NOW - 5, "result": {"content": [], "isError": False}},
            {"status": "completed", "result": {"content": [], "isError": False}},
        ),
        (
            {
                "status": "failed",
                "ended_at": NOW - 5,
                "error": "gone",
                "error_object": {"code": -1, "message": "gone"},
            },
            {"status": "failed", "error": {"code": -1, "message": "gone"}, "statusMessage": "gone"},
        ),
        (
            {"status": "cancelled", "ended_at": NOW - 5, "cancel_reason": "cancelled by tasks/cancel"},
            {"status": "cancelled", "statusMessage": "cancelled by tasks/cancel"},
        ),
    ],
)
def test_every_status_renders_as_the_specification_says(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    task = record(**fields)
    message = "copying (40%)" if task.status == "running" else None
    view = detailed_view(task, now=NOW, ttl=3600, status_message=message)
    assert view["taskId"] == "mcp-x" and view["pollIntervalMs"] == 1000
    assert view["createdAt"] == "2025-06-15T15:06:40.000Z"
    assert view["lastUpdatedAt"] == "2025-06-15T15:06:41.000Z"
    assert view["ttlMs"] == (3_605_000 if task.ended_at else 3_610_000)  # kept 1 h after it ends
    for key, value in expected.items():
        assert view[key] == value
    shown = {"taskId", "status", "createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"}
    assert set(view) == shown | set(expected)
    assert "requestState" not in view and "resultType" not in view
    assert set(task_view(task, now=NOW, ttl=0)) == shown and task_view(task, now=NOW, ttl=0)["ttlMs"] is None


async def test_a_get_of_an_ended_task_is_served_from_memory_after_the_first(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        task_id = await create(engine, "echo", {"message": "hi"})
        first = await wait_wire(engine, task_id, "completed")
        reads = 0
        read = engine._store.read

        async def counting(query: Any) -> Any:
            nonlocal reads
            reads += 1
            return await read(query)

        engine._store.read = counting  # type: ignore[method-assign]
        assert await engine.protocol_get(task_id) == first
        assert reads == 0


async def test_create_refuses_arguments_of_the_wrong_type(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        with pytest.raises(ClientRequestError, match="^arguments: must be an object$"):
            await engine.protocol_create("echo", [], CLIENT)  # type: ignore[arg-type]
        with pytest.raises(ClientRequestError, match="^tool: "):
            await engine.protocol_create("", {}, CLIENT)


async def test_an_engine_without_settings_keeps_tasks_an_hour_and_the_queue_a_week(database: Target) -> None:
    engine = Engine(database, standard_executor())
    assert (engine.task_ttl, engine.task_retention) == (3600.0, 604800.0)
