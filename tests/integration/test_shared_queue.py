"""Two real supervisors sharing one task queue on a real PostgreSQL database (issue 18, section 1): MCP
tasks made through one are read and cancelled through the other, and a kill -9 of one supervisor with all
its workers mid-run leaves every task in exactly one terminal state, with no non-idempotent task run twice
(a run log, as in test_mcp_tasks.py) and the dead one's tasks taken over by the other after its lease."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import RunningSupervisor, text
from tests.pgserver import PostgresServer
from tests.tasks_client import (
    TERMINAL,
    TasksExtension,
    assert_ended_as_recovery_allows,
    cancel_task,
    get_task,
    wait_for_task,
)

pytestmark = pytest.mark.anyio

TOOLS = ("--tools", "tests.integration.task_tools")
MODERN = "2026-07-28"
LEASE = "2"
"""task_lease_seconds of the test's supervisors: the dead one's tasks are taken over about 2 s after."""


def tasks_client(server: RunningSupervisor) -> Client:
    return Client(server.url, mode=MODERN, extensions=[TasksExtension()])


async def start(client: Client, tool: str, **arguments: Any) -> str:
    created = await client.session.call_tool(tool, arguments, allow_claimed=True)
    answer = created.model_dump(by_alias=True, exclude_none=True)
    assert answer["resultType"] == "task", answer
    return str(answer["taskId"])


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [tuple(row) for row in conn.execute(sql, params)]


def queue_worker_pid(server: RunningSupervisor) -> int:
    return int(server.worker("trio-queue")["pid"])


@pytest.fixture
def shared_db(postgres: PostgresServer) -> str:
    return postgres.database()


async def test_a_task_made_through_one_supervisor_is_read_and_cancelled_through_the_other(
    supervisor_factory: Any, shared_db: str, tmp_path: Path
) -> None:
    args = (*TOOLS, "--task-db", shared_db, "--task-lease-seconds", LEASE)
    one, other = supervisor_factory(*args), supervisor_factory(*args)
    marker = tmp_path / "cancelled"
    async with tasks_client(one) as first, tasks_client(other) as second:
        task_id = await start(first, "tk_wait_for_cancel", marker=str(marker))
        working = await wait_for_task(second.session, task_id, frozenset({"working"}))
        assert working["taskId"] == task_id
        with anyio.fail_after(15):  # its progress, written by whichever supervisor runs it
            while "copying" not in (await get_task(second.session, task_id)).get("statusMessage", ""):
                await anyio.sleep(0.05)
        status = json.loads(text(await second.call_tool("task_status", {"task_id": task_id})))
        assert status["status"] == "running" and status["origin"] == "mcp"
        await cancel_task(second.session, task_id)
        for client in (first, second):
            assert (await wait_for_task(client.session, task_id))["status"] == "cancelled"
    other.wait_for(marker.exists, "the tool to see the cancellation in its worker", deadline=15)


async def test_a_kill_9_of_one_supervisor_leaves_every_task_in_one_terminal_state_run_once_unless_it_may(
    supervisor_factory: Any, shared_db: str, tmp_path: Path
) -> None:
    """140 tasks (100 idempotent, 40 not) made through one supervisor; both run them; the one they were
    made through is killed with all its workers mid-run; the other answers for every task."""
    log = tmp_path / "runs.log"
    args = (*TOOLS, "--task-db", shared_db, "--task-lease-seconds", LEASE)
    doomed, survivor = supervisor_factory(*args), supervisor_factory(*args)
    doomed_engine = f"/{queue_worker_pid(doomed)}/"
    kinds: dict[str, str] = {}
    try:
        async with tasks_client(doomed) as client:
            for n in range(140):
                tool = "tk_again" if n < 100 else "tk_once"
                kinds[await start(client, tool, n=n, log=str(log), seconds=0.3)] = tool

        def doomed_runs_some() -> bool:
            running = rows(
                shared_db,
                "SELECT COUNT(*) FROM tasks WHERE status = 'running' AND claimed_by LIKE %s",
                f"%{doomed_engine}%",
            )[0][0]
            return bool(running) and log.exists() and len(log.read_text().split()) >= 20

        doomed.wait_for(doomed_runs_some, "the supervisor to be killed to run some of the tasks")
    finally:
        doomed.kill_tree()
        doomed.stop()
    ran_before = Counter(log.read_text().split())
    async with tasks_client(survivor) as client:
        final = {task_id: await wait_for_task(client.session, task_id, deadline=120) for task_id in kinds}
    assert_ended_as_recovery_allows(final, kinds)
    runs = Counter(log.read_text().split())
    once = {n: count for n, count in runs.items() if int(n) >= 100}
    assert max(once.values()) == 1, f"a non-idempotent task ran twice: {once}"
    assert sum(runs.values()) > sum(ran_before.values())  # the survivor ran tasks after the kill
    stored = dict(rows(shared_db, "SELECT task_id, status FROM tasks"))
    assert {stored[task_id] for task_id in kinds} <= TERMINAL
    taken = rows(
        shared_db,
        "SELECT COUNT(DISTINCT task_id) FROM task_logs WHERE message LIKE %s",
        "%stopped renewing its lease%",
    )[0][0]
    assert taken >= 1  # the killed supervisor's running tasks were taken over, not left running
    assert rows(shared_db, "SELECT COUNT(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
