"""The PostgreSQL store on a real server: its schema and versions, its errors (checked writes, taken
keys, a server it cannot reach, named without the password), text PostgreSQL cannot hold, and the
notifications that tell other engines what changed (within PostgreSQL's payload limit)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trio_worker.taskqueue import rows, schema
from trio_worker.taskqueue.db import DuplicateError, StaleError, open_store
from trio_worker.taskqueue.errors import QueueUnavailableError
from trio_worker.taskqueue.pgstore import NOTIFY_LIMIT, PgStore
from trio_worker.taskqueue.records import LogLine, TaskRecord

from .conftest import execute, select

pytestmark = pytest.mark.anyio


def task(task_id: str, rev: int = 1) -> TaskRecord:
    return TaskRecord(
        task_id=task_id, seq=1, task_type="echo", payload={}, priority=1.0, order_priority=1.0, order_seq=1,
        tags=[], timeout=None, max_retries=0, backoff_factor=1.0, backoff="exponential", metadata={},
        status="queued", submitted_at=1.0, queued_at=1.0, rev=rev,
    )  # fmt: skip


@pytest.fixture
def url(postgres: Any) -> str:
    return str(postgres.database())


async def test_a_new_database_gets_every_table_at_the_current_version_once(url: str) -> None:
    for _ in range(2):  # a second open changes nothing
        store = open_store(url)
        await store.open()
        await store.close()
    assert select(url, "SELECT version, description FROM schema_migrations") == [
        (schema.SCHEMA_VERSION, "the tables of version 3")
    ]
    for table, columns in schema.TABLES.items():
        found = {
            r[0]
            for r in select(
                url, "SELECT column_name FROM information_schema.columns WHERE table_name = ?", table
            )
        }
        assert found == {name for name, _, _ in columns}, table
    assert select(url, "SELECT value FROM settings WHERE key = 'paused'") == [("null",)]


async def test_a_newer_schema_is_refused(url: str) -> None:
    store = open_store(url)
    await store.open()
    await store.close()
    execute(url, "INSERT INTO schema_migrations VALUES (?, 'from the future', 0)", schema.SCHEMA_VERSION + 1)
    with pytest.raises(
        QueueUnavailableError, match=r"schema version 4, newer than this version understands \(3\)"
    ):
        await open_store(url).open()


async def test_checked_writes_and_taken_keys_fail_the_whole_transaction(url: str) -> None:
    store = open_store(url)
    await store.open()
    try:
        await store.write([rows.insert_task(task("a"))])
        with pytest.raises(DuplicateError):
            await store.write([rows.add_log(LogLine("a", 1.0, "info", "lost")), rows.insert_task(task("a"))])
        await store.write([rows.put_task(task("a", rev=2))])  # over revision 1: applied
        with pytest.raises(StaleError):  # over revision 1 again: the row has 2 now
            await store.write(
                [rows.add_log(LogLine("a", 1.0, "info", "lost")), rows.put_task(task("a", rev=2))]
            )
    finally:
        await store.close()
    assert select(url, "SELECT rev FROM tasks") == [(2,)]
    assert select(url, "SELECT COUNT(*) FROM task_logs") == [(0,)]  # nothing of the failed transactions


async def test_text_postgresql_cannot_hold_is_stored_with_a_replacement_character(url: str) -> None:
    store = open_store(url)
    await store.open()
    try:
        await store.write([rows.add_log(LogLine("a", 1.0, "info", "before\x00after"))])
    finally:
        await store.close()
    assert select(url, "SELECT message FROM task_logs") == [("before\ufffdafter",)]


async def test_a_server_that_cannot_be_reached_is_named_without_the_password(postgres: Any) -> None:
    socket_dir = postgres.socket_dir
    url = f"postgresql://someone:hunter2@/nowhere?host={socket_dir}/missing&connect_timeout=2"
    with pytest.raises(QueueUnavailableError) as refused:
        await open_store(url).open()
    message = str(refused.value)
    assert message.startswith("database: cannot use postgresql://someone:***@/nowhere?host=")
    assert "hunter2" not in message and "\n" not in message


def test_announcements_stay_under_the_payload_limit_and_name_everything() -> None:
    store = PgStore("postgresql:///x", engine_id="e1")
    ids = [f"task-{n:016x}" for n in range(2000)]
    writes = store.announce(ids, ["wf-1"], True)
    payloads = [json.loads(params[1]) for _, params in writes]
    assert len(writes) > 1 and all(len(params[1]) <= NOTIFY_LIMIT for _, params in writes)
    assert [i for p in payloads for i in p["t"]] == ids and [w for p in payloads for w in p["w"]] == ["wf-1"]
    assert all(p["e"] == "e1" for p in payloads) and any(p["s"] for p in payloads)
    assert store.announce([], [], False) == []
