"""7. MCP tasks: task creation through ``tools/call`` and ``tasks/get``, durable, vs a plain ``tools/call``.

Load: ``wrk -t1 -c32`` POSTing 2026-07-28 requests that declare the ``io.modelcontextprotocol/tasks``
extension; the script refuses the run on any answer that is not HTTP 200 with the expected text
(``"resultType":"task"`` for a creation, ``"resultType":"complete"`` for ``tasks/get``), so every task
counted was created: committed and synced before the answer (the queue's group commit).

Baseline, in the same run and at the same concurrency: a plain ``tools/call`` of a no-op tool.

Creation: ``tools/call`` of ``noop_task`` (``task_support="optional"``) while the queue is paused, so only
creating is measured (a task is a row of the task queue; ``queue_pause`` holds protocol tasks too).
``tasks/get``: 256 tasks are created by hand, the queue resumed, and once they completed wrk cycles
``tasks/get`` through them (each answer inlines the task's result).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from benchmarks.lib.mcp_client import PROTOCOL_VERSION, parse_answer
from benchmarks.lib.results import BenchmarkError, Section, Target
from benchmarks.lib.servers import HttpServer, start_supervisor, stop_server
from benchmarks.lib.stats import fmt_rate, fmt_us
from benchmarks.lib.suite import Suite
from benchmarks.lib.wrk import WrkResult, run_wrk, run_wrk_requests, warm_up

NAME = "mcptasks"
TITLE = "MCP tasks"
PLAIN_TOOL = "noop_asyncio"
TASK_TOOL = "noop_task"
TASKS = "io.modelcontextprotocol/tasks"
CONCURRENCY = 32
SECONDS = 3
GET_TASKS = 256
COMPLETE_DEADLINE = 60.0


def _meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}},
    }


def _body(method: str, params: dict[str, Any]) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": _meta()}},
        separators=(",", ":"),
    )


def _headers(method: str, name: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
        "Mcp-Method": method,
        "Mcp-Name": name,
    }


async def _request(
    client: httpx.AsyncClient, url: str, method: str, name: str, params: dict[str, Any]
) -> Any:
    """One request; its result, or ``BenchmarkError`` with the answer."""
    response = await client.post(url, content=_body(method, params), headers=_headers(method, name))
    answer = parse_answer(response)
    if response.status_code != 200 or "result" not in answer:
        raise BenchmarkError(
            f"{method} {name} failed: HTTP {response.status_code} {json.dumps(answer)[:300]}"
        )
    return answer["result"]


async def _tool(client: httpx.AsyncClient, url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await _request(client, url, "tools/call", tool, {"name": tool, "arguments": arguments})
    if result.get("isError"):
        raise BenchmarkError(f"{tool} failed: {json.dumps(result)[:300]}")
    return json.loads(result["content"][0]["text"])  # type: ignore[no-any-return]


async def _created_tasks(server: HttpServer, count: int) -> list[str]:
    """Create ``count`` tasks by hand, resume the queue and wait until they completed; their ids."""
    async with httpx.AsyncClient(timeout=30) as client:
        ids = []
        for _ in range(count):
            created = await _request(
                client, server.url, "tools/call", TASK_TOOL, {"name": TASK_TOOL, "arguments": {}}
            )
            if created.get("resultType") != "task":
                raise BenchmarkError(f"{TASK_TOOL} did not create a task: {json.dumps(created)[:300]}")
            ids.append(created["taskId"])
        await _tool(client, server.url, "queue_resume", {})
        started = time.monotonic()
        for task_id in ids:
            while True:
                task = await _request(client, server.url, "tasks/get", task_id, {"taskId": task_id})
                if task["status"] == "completed":
                    break
                if time.monotonic() - started > COMPLETE_DEADLINE:
                    raise BenchmarkError(f"task {task_id} did not complete: {json.dumps(task)[:300]}")
                await asyncio.sleep(0.02)
        return ids


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    seconds = suite.pick(SECONDS, 1)
    server = await start_supervisor(suite, NAME, task_queue=True)
    create = [(TASK_TOOL, _body("tools/call", {"name": TASK_TOOL, "arguments": {}}))]
    try:
        await warm_up(suite, server, [(PLAIN_TOOL, None)], CONCURRENCY)
        plain: WrkResult = await run_wrk(suite, server, [(PLAIN_TOOL, None)], CONCURRENCY, seconds)
        async with httpx.AsyncClient(timeout=30) as client:
            await _tool(client, server.url, "queue_pause", {"reason": "benchmark"})
        await run_wrk_requests(suite, server, create, CONCURRENCY, 1, expect='"resultType":"task"')  # warm-up
        created: WrkResult = await run_wrk_requests(
            suite, server, create, CONCURRENCY, seconds, expect='"resultType":"task"'
        )
        ids = await _created_tasks(server, GET_TASKS)
        gets = [(task_id, _body("tasks/get", {"taskId": task_id})) for task_id in ids]
        fetched: WrkResult = await run_wrk_requests(
            suite, server, gets, CONCURRENCY, seconds, method="tasks/get", expect='"resultType":"complete"'
        )
    finally:
        await stop_server(suite, server)
    call_rate = plain.rate
    for key, what, limit, run_ in (
        ("create", "task creations/s through tools/call (durable)", 2000.0, created),
        ("get", "tasks/get/s of completed tasks", 5000.0, fetched),
    ):
        section.targets.append(
            Target(
                key=f"mcptasks-{key}",
                what=what,
                target=f"≥ {limit:,.0f}/s",
                limit=limit,
                better="higher",
                measured=run_.rate,
                ratio=run_.rate / call_rate if call_rate else None,
                ratio_of="÷ plain tools/call of a no-op tool",
                absolute=f"{fmt_rate(run_.rate)} vs {fmt_rate(call_rate)} (p50 {fmt_us(run_.p50_us)}, "
                f"p99 {fmt_us(run_.p99_us)})",
            )
        )
    section.data["rates"] = {"call": call_rate, "create": created.rate, "get": fetched.rate}
    section.details += [
        f'`wrk -t1 -c{CONCURRENCY}`, {seconds} s each, every answer checked (HTTP 200 and `"resultType"`): '
        f"plain `tools/call` of `{PLAIN_TOOL}` {plain.requests:,} ({fmt_rate(call_rate)}, p50 "
        f"{fmt_us(plain.p50_us)}, p99 {fmt_us(plain.p99_us)}); `tools/call` of `{TASK_TOOL}` creating a "
        f"task, queue paused, {created.requests:,} ({fmt_rate(created.rate)}, p50 {fmt_us(created.p50_us)}, "
        f"p99 {fmt_us(created.p99_us)}); `tasks/get` cycling through {GET_TASKS} completed tasks "
        f"{fetched.requests:,} ({fmt_rate(fetched.rate)}, p50 {fmt_us(fetched.p50_us)}, p99 "
        f"{fmt_us(fetched.p99_us)})."
    ]
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import main

    sys.exit(main(["--only", NAME, *sys.argv[1:]]))
