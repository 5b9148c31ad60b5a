"""MCP tasks (the ``io.modelcontextprotocol/tasks`` extension) end to end: a real supervisor, its workers
and its task queue, over HTTP, with the official SDK's client (``tests.tasks_client``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import REPO, RunningSupervisor, spawn_supervisor, text
from tests.tasks_client import (
    TASKS,
    TasksExtension,
    assert_ended_as_recovery_allows,
    cancel_task,
    get_task,
    update_task,
    wait_for_task,
)

pytestmark = pytest.mark.anyio

TOOLS = ("--tools", "tests.integration.task_tools")
MODERN = "2026-07-28"


async def not_here(context: Any, params: Any) -> Any:
    raise AssertionError("a task's requests reach the client through tasks/get, never as a request")


def tasks_client(server: RunningSupervisor) -> Client:
    """A 2026-07-28 client that declares the tasks extension and elicitation."""
    return Client(server.url, mode=MODERN, extensions=[TasksExtension()], elicitation_callback=not_here)


def bare(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without its ``_meta`` (the server's ``serverInfo`` stamp)."""
    return {key: value for key, value in answer.items() if key != "_meta"}


async def start(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call ``tool`` and return the ``CreateTaskResult`` it answers with."""
    created = await client.session.call_tool(tool, arguments, allow_claimed=True)
    answer = created.model_dump(by_alias=True, exclude_none=True)
    assert answer["resultType"] == "task", answer
    return answer


async def test_a_task_is_answered_by_tasks_get_and_a_client_without_the_extension_gets_a_plain_result(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(*TOOLS)
    async with tasks_client(server) as client:
        created = await start(client, "tk_quick", text="hello")
        assert created["status"] == "working" and created["ttlMs"] >= 3_600_000
        assert "result" not in created and "requestState" not in created
        done = await wait_for_task(client.session, created["taskId"])
        assert done["status"] == "completed" and done["resultType"] == "complete"
        assert done["result"]["content"] == [{"type": "text", "text": "HELLO"}]
        assert text(await client.call_tool("tk_quick", {"text": "again"})) == "AGAIN"  # polled by the client
    async with Client(server.url, mode=MODERN) as plain:
        assert text(await plain.call_tool("tk_quick", {"text": "plain"})) == "PLAIN"
        with pytest.raises(MCPError) as refused:
            await plain.call_tool("tk_once", {"n": 1, "log": os.devnull})
        assert refused.value.error.code == -32021


async def test_progress_shows_in_the_status_message_and_cancel_reaches_the_tool(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    server = supervisor_factory(*TOOLS)
    marker = tmp_path / "cancelled"
    async with tasks_client(server) as client:
        task_id = (await start(client, "tk_wait_for_cancel", marker=str(marker)))["taskId"]
        with anyio.fail_after(10):
            while "copying" not in (task := await get_task(client.session, task_id)).get("statusMessage", ""):
                await anyio.sleep(0.05)
        assert task["status"] == "working" and "25%" in task["statusMessage"]
        assert bare(await cancel_task(client.session, task_id)) == {"resultType": "complete"}
        assert (await wait_for_task(client.session, task_id))["status"] == "cancelled"
        assert bare(await cancel_task(client.session, task_id)) == {"resultType": "complete"}  # idempotent
    server.wait_for(marker.exists, "the tool to observe the cancellation", deadline=10)


async def test_an_input_required_task_resumes_through_tasks_update_after_its_worker_restarts(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(*TOOLS)
    async with tasks_client(server) as client:
        task_id = (await start(client, "tk_confirm", what="the upgrade"))["taskId"]
        parked = await wait_for_task(client.session, task_id, frozenset({"input_required"}))
        assert parked["inputRequests"]["confirm"]["method"] == "elicitation/create"
        old = server.worker("asyncio-0")["pid"]
        os.kill(old, signal.SIGKILL)
        server.wait_for(
            lambda: (
                server.worker("asyncio-0").get("pid") not in (None, old)
                and server.worker("asyncio-0")["state"] == "ready"
            ),
            "a new asyncio worker",
        )
        assert (await get_task(client.session, task_id))["status"] == "input_required"  # from the database
        ack = await update_task(
            client.session, task_id, {"confirm": {"action": "accept", "content": {"ok": True}}}
        )
        assert bare(ack) == {"resultType": "complete"}
        done = await wait_for_task(client.session, task_id)
        assert done["status"] == "completed" and done["result"]["content"][0]["text"] == "the upgrade: yes"


async def test_status_metrics_and_top_see_an_mcp_task_waiting_for_input(supervisor_factory: Any) -> None:
    """Issue 14, item 6: a protocol task is a row of the one queue, so /status, /metrics and top count it."""
    server = supervisor_factory(*TOOLS)
    async with tasks_client(server) as client:
        task_id = (await start(client, "tk_confirm", what="the report"))["taskId"]
        await wait_for_task(client.session, task_id, frozenset({"input_required"}))
        document = server.status()
        queue = document["task_queue"]
        assert queue["error"] is None and queue["paused"] is False
        assert "tasks:stats" not in document["tools"].get("trio-queue", {})  # its own polls are not calls
        assert queue["tasks"]["input_required"] == {"mcp": 1, "queue": 0}
        assert 0 <= queue["as_of"] < 1.0
        metrics = server.get("/metrics").text.splitlines()
        assert 'mcp_supervisor_tasks{origin="mcp",status="input_required"} 1.0' in metrics
        assert "mcp_supervisor_task_queue_paused 0.0" in metrics
        top = subprocess.run(
            [
                sys.executable,
                "-m",
                "supervisor",
                "top",
                "--once",
                "--port",
                str(server.port),
                "--interval",
                "0.1",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "COLUMNS": "160"},
        )
        assert top.returncode == 0, top.stderr
        assert "queue    queued 0  running 0  input_required 1  done 0" in top.stdout  # from ctl status
        await cancel_task(client.session, task_id)

        def cancelled_counted() -> bool:
            lines = server.get("/metrics").text.splitlines()
            return (
                'mcp_supervisor_tasks_finished_total{origin="mcp",status="cancelled"} 1.0' in lines
                and 'mcp_supervisor_tasks{origin="mcp",status="input_required"} 0.0' in lines
            )

        server.wait_for(cancelled_counted, "the cancelled task to be counted on /metrics")


async def test_a_task_is_gone_once_its_ttl_has_passed(supervisor_factory: Any) -> None:
    server = supervisor_factory(*TOOLS, "--task-ttl", "1")
    async with tasks_client(server) as client:
        created = await start(client, "tk_quick", text="short-lived")
        assert created["ttlMs"] >= 1000
        await wait_for_task(client.session, created["taskId"])
        with anyio.fail_after(15):
            while True:
                try:
                    await get_task(client.session, created["taskId"])
                except MCPError as gone:
                    assert gone.error.code == -32602
                    break
                await anyio.sleep(0.1)
        with pytest.raises(MCPError) as unknown:
            await cancel_task(client.session, created["taskId"])
        assert unknown.value.error.code == -32602


async def test_every_task_survives_a_kill_9_of_every_process_and_none_runs_twice_unless_it_may(
    tmp_path: Path,
) -> None:
    """300 idempotent and 50 non-idempotent tasks; SIGKILL the supervisor and all its workers at once
    while they run; a new supervisor on the same state brings every task to exactly one terminal state,
    running again only the idempotent ones."""
    log = tmp_path / "runs.log"
    args = (*TOOLS, "--task-db", str(tmp_path / "tasks.db"))
    first = spawn_supervisor(*args)
    kinds: dict[str, str] = {}
    try:
        async with tasks_client(first) as client:
            for n in range(350):
                tool = "tk_again" if n < 300 else "tk_once"
                created = await start(client, tool, n=n, log=str(log), seconds=0.3)
                kinds[created["taskId"]] = tool
            first.wait_for(lambda: log.exists() and len(log.read_text().split()) >= 40, "tasks to be running")
    finally:
        first.kill_tree()
        first.stop()
    ran_before = Counter(log.read_text().split())
    second = spawn_supervisor(*args)
    try:
        async with tasks_client(second) as client:
            final: dict[str, dict[str, Any]] = {}
            for task_id in kinds:
                final[task_id] = await wait_for_task(client.session, task_id, deadline=120)
    finally:
        second.stop()
    runs = Counter(log.read_text().split())
    assert_ended_as_recovery_allows(final, kinds)
    once = {n: count for n, count in runs.items() if int(n) >= 300}
    assert max(once.values()) == 1, f"a non-idempotent task ran twice: {once}"
    assert sum(ran_before.values()) < sum(runs.values())  # the second supervisor did run tasks


async def sse_messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC messages of an event stream, as they arrive."""
    async for line in response.aiter_lines():
        if line.startswith("data:") and line[5:].strip():
            yield json.loads(line[5:])


async def test_a_listen_stream_naming_a_task_gets_its_new_states(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    """The SDK's client cannot name tasks on ``subscriptions/listen`` yet: this test speaks HTTP itself."""
    server = supervisor_factory(*TOOLS)
    async with tasks_client(server) as client:
        task_id = (await start(client, "tk_wait_for_cancel", marker=str(tmp_path / "cancelled")))["taskId"]
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}},
        }
        body = {
            "jsonrpc": "2.0",
            "id": "listen-1",
            "method": "subscriptions/listen",
            "params": {"notifications": {"taskIds": [task_id]}, "_meta": meta},
        }
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "subscriptions/listen",
        }
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("POST", server.url, json=body, headers=headers) as response,
        ):
            assert response.status_code == 200
            messages = sse_messages(response)
            with anyio.fail_after(10):
                ack = await anext(messages)
            assert ack["method"] == "notifications/subscriptions/acknowledged"
            assert ack["params"]["notifications"]["taskIds"] == [task_id]
            await cancel_task(client.session, task_id)
            with anyio.fail_after(10):
                async for message in messages:
                    if message.get("method") == "notifications/tasks":
                        break
            assert message["params"]["taskId"] == task_id and message["params"]["status"] == "cancelled"
            assert message["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1"


async def test_tasks_are_answered_across_a_reload_of_every_worker(supervisor_factory: Any) -> None:
    """``ctl reload`` (SIGHUP) replaces every worker, the task queue's included; the tasks stay known."""
    server = supervisor_factory(*TOOLS)
    async with tasks_client(server) as client:
        done = (await start(client, "tk_quick", text="before"))["taskId"]
        await wait_for_task(client.session, done)
        parked = (await start(client, "tk_confirm", what="the reload"))["taskId"]
        await wait_for_task(client.session, parked, frozenset({"input_required"}))
        queue_pid = server.worker("trio-queue")["pid"]
        server.process.send_signal(signal.SIGHUP)
        server.wait_for(lambda: "reload done" in server.log(), "the reload")
        assert server.worker("trio-queue")["pid"] != queue_pid
        assert (await get_task(client.session, done))["result"]["content"][0]["text"] == "BEFORE"
        assert (await get_task(client.session, parked))["status"] == "input_required"
        await update_task(client.session, parked, {"confirm": {"action": "accept", "content": {"ok": False}}})
        finished = await wait_for_task(client.session, parked)
        assert finished["result"]["content"][0]["text"] == "the reload: no"


async def test_a_graceful_stop_lets_running_tasks_finish_and_starts_no_new_one(tmp_path: Path) -> None:
    """On SIGTERM the supervisor waits for the running calls (within ``shutdown_grace``) and the drained
    task queue starts no new attempt meanwhile (one would be cut by the stop and, not idempotent, fail):
    the next supervisor on the same database finds the running tasks completed and runs the queued one."""
    log = tmp_path / "runs.log"
    args = (*TOOLS, "--task-db", str(tmp_path / "tasks.db"))
    first = spawn_supervisor(*args)
    try:
        async with tasks_client(first) as client:  # the queue runs at most 5 tasks per worker at once
            ids = [
                (await start(client, "tk_once", n=n, log=str(log), seconds=1.5))["taskId"] for n in range(6)
            ]
            first.wait_for(lambda: log.exists() and len(log.read_text().split()) == 5, "five tasks to start")
    finally:
        assert first.stop() == 0
    assert len(log.read_text().split()) == 5  # the sixth did not start during the stop
    second = spawn_supervisor(*args)
    try:
        async with tasks_client(second) as client:
            for task_id in ids:
                assert (await wait_for_task(client.session, task_id))["status"] == "completed"
    finally:
        second.stop()
    assert sorted(log.read_text().split()) == [str(n) for n in range(6)]
