"""Issue 17, section 2: a tool that keeps crashing its worker is quarantined, not its runtime.

Real supervisors over HTTP, the official SDK client, and a tool that really segfaults its asyncio worker
(``ctypes.string_at(0)`` in ``segfault_tools``). Before the quarantine, six calls of it tripped the
flapping rule and every asyncio tool answered "runtime asyncio is unavailable" for a minute.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from tests.conftest import REPO, RunningSupervisor, text
from tests.integration.test_operations import metric_samples
from tests.tasks_client import TasksExtension

pytestmark = pytest.mark.anyio

TOOLS = ("--tools", "tests.integration.segfault_tools")
REFUSAL = re.compile(
    r"tool 'it_segfault' is quarantined: its worker died 3 times within 60 s while running it; "
    r"it will be tried again in (\d+) s \(at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)"
)


def ctl(server: RunningSupervisor, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", "ctl", "--port", str(server.port), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def crash(client: Client) -> None:
    """One call of the segfaulting tool: its worker dies under it."""
    result = await client.call_tool("it_segfault", {})
    assert result.is_error is True and "killed by SIGSEGV" in text(result), text(result)


async def crash_while_lingering(client: Client) -> Any:
    """Start a long it_linger, crash the worker once it runs, and return it_linger's answer."""
    started = anyio.Event()
    answers: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async def linger() -> None:
        answers.append(await client.call_tool("it_linger", {"seconds": 60}, progress_callback=on_progress))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as calls:
            calls.start_soon(linger)
            await started.wait()
            await crash(client)
    return answers[0]


def posts(server: RunningSupervisor) -> dict[str, int]:
    counts: dict[str, int] = server.status()["supervisor"]["mcp_posts"]
    return counts


async def test_the_third_crash_quarantines_the_tool_and_the_rest_of_its_runtime_keeps_serving(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(*TOOLS)
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with (
        Client(server.url, mode="legacy", message_handler=on_message) as legacy,  # a session
        Client(server.url, mode="2026-07-28") as modern,  # stateless
    ):
        assert "it_segfault" in {tool.name for tool in (await legacy.list_tools()).tools}
        for _ in range(3):
            await crash(modern)
        with anyio.fail_after(15):
            await changed.wait()  # list_changed when it was quarantined

        # refused at once, on both paths, with one line saying why and until when; no worker dies
        pid = server.wait_for(
            lambda: (w := server.worker("asyncio-0"))["state"] == "ready" and w["pid"], "asyncio-0 back"
        )
        before = posts(server)
        for client in (legacy, modern):
            refused = await client.call_tool("it_segfault", {})
            assert refused.is_error is True
            match = REFUSAL.fullmatch(text(refused))
            assert match is not None, text(refused)
            assert 250 <= int(match.group(1)) <= 300
        after = posts(server)
        # both refused by the fast path: the stateless one and the one on a handshake-era session (the
        # SDK path reaches the same Router.call; test_fastpath_sessions.py compares the two paths)
        assert after["fast_path"] == before["fast_path"] + 2
        # another tool of the same runtime serves at once, on the same worker: nothing was restarted
        assert text(await modern.call_tool("echo", {"message": "still here"})) == "still here"
        served = await legacy.call_tool("whoami_asyncio", {})
        assert served.structured_content is not None and served.structured_content["pid"] == pid
        assert server.worker("asyncio-0")["restarts"] == 3 and server.worker("asyncio-0")["state"] == "ready"
        assert "resting" not in server.log()  # the flapping rule left the slot alone
        assert "it_segfault" not in {tool.name for tool in (await legacy.list_tools()).tools}
        assert server.get("/readyz").status_code == 200

        # an MCP task of it: refused the same way, no task made
        async with Client(server.url, mode="2026-07-28", extensions=[TasksExtension()]) as tasks:
            created = await tasks.session.call_tool("it_segfault", {}, allow_claimed=True)
            answer = created.model_dump(by_alias=True, exclude_none=True)
            assert answer.get("resultType") != "task" and answer["isError"] is True
            assert REFUSAL.fullmatch(answer["content"][0]["text"]), answer
        # the task queue takes the submission and holds it back, not counted, until the quarantine ends
        submitted = await modern.call_tool("task_submit", {"task_type": "it_segfault", "payload": {}})
        assert submitted.structured_content is not None
        task_id = submitted.structured_content["task_id"]

        async def task_held() -> bool:
            status = await modern.call_tool("task_status", {"task_id": task_id, "include_logs": True})
            assert status.structured_content is not None
            task = status.structured_content
            return task["status"] == "queued" and any(
                REFUSAL.match(line["message"]) for line in task.get("logs") or []
            )

        with anyio.fail_after(20):
            while not await task_held():
                await anyio.sleep(0.1)

        # visible to operators
        status = server.status()
        [entry] = status["quarantined"]
        assert (entry["tool"], entry["pool"], entry["deaths"]) == ("it_segfault", "asyncio", 3)
        assert entry["until"] - entry["since"] == pytest.approx(300.0)
        assert 0 < entry["retry_in_seconds"] <= 300
        samples = metric_samples(server.get("/metrics").text)
        assert samples[("mcp_supervisor_quarantined_tools", ())] == 1
        assert samples[("mcp_supervisor_tool_quarantines_total", (("tool", "it_segfault"),))] == 1
        shown = ctl(server, "status")
        assert shown.returncode == 0
        assert "QUARANTINED it_segfault (asyncio, worker deaths 3): tried again in" in shown.stdout
        assert json.loads(ctl(server, "status", "--json").stdout)["result"]["quarantined"] == [
            {**entry, "retry_in_seconds": pytest.approx(entry["retry_in_seconds"], abs=60)}
        ]

        # ctl release: one clear line for what cannot be released, then it runs (and crashes) again
        for name, why in [
            ("echo", "tool 'echo' is not quarantined"),
            ("nonesuch", "no tool named 'nonesuch'"),
        ]:
            refused_release = ctl(server, "release", name)
            assert refused_release.returncode == 1
            assert refused_release.stderr == f"mcp-supervisor ctl: release failed: {why}\n"
        changed = anyio.Event()
        released = ctl(server, "release", "it_segfault")
        assert released.returncode == 0, released.stderr
        assert released.stdout.startswith("release: tool 'it_segfault' released")
        with anyio.fail_after(15):
            await changed.wait()  # list_changed when it was released
        assert "it_segfault" in {tool.name for tool in (await legacy.list_tools()).tools}
        assert server.status()["quarantined"] == []
        await crash(modern)  # it runs again; its count starts from 0, so it is not quarantined by this
        assert server.status()["quarantined"] == []
        samples = metric_samples(server.get("/metrics").text)
        assert samples[("mcp_supervisor_quarantined_tools", ())] == 0
        assert samples[("mcp_supervisor_tool_quarantines_total", (("tool", "it_segfault"),))] == 1


async def test_a_tool_in_flight_at_every_crash_whose_calls_complete_in_between_is_not_quarantined(
    supervisor_factory: Any,
) -> None:
    """it_linger shares the only asyncio worker with the crasher and is running at each of its crashes,
    so both are charged three deaths; but it answered calls in between and the crasher never did."""
    server = supervisor_factory(*TOOLS)
    async with Client(server.url, mode="2026-07-28") as client:
        for _ in range(3):
            assert text(await client.call_tool("it_linger", {"seconds": 0})) == "lingered 0 s"
            lost = await crash_while_lingering(client)
            assert lost.is_error is True and "killed by SIGSEGV" in text(lost)
        quarantined = server.status()["quarantined"]
        assert [entry["tool"] for entry in quarantined] == ["it_segfault"]
        assert text(await client.call_tool("it_linger", {"seconds": 0})) == "lingered 0 s"


async def test_a_quarantine_ends_by_itself_and_the_tool_runs_again(supervisor_factory: Any) -> None:
    server = supervisor_factory(
        *TOOLS, env={"MCP_SUPERVISOR_QUARANTINE_DEATHS": "1", "MCP_SUPERVISOR_QUARANTINE_SECONDS": "2"}
    )
    async with Client(server.url, mode="2026-07-28") as client:
        await crash(client)
        refused = await client.call_tool("it_segfault", {})
        assert "is quarantined: its worker died once within 60 s" in text(refused)
        assert [entry["tool"] for entry in server.status()["quarantined"]] == ["it_segfault"]

        async def listed() -> bool:
            return "it_segfault" in {tool.name for tool in (await client.list_tools()).tools}

        assert not await listed()
        server.wait_for(lambda: server.status()["quarantined"] == [], "the quarantine to end", deadline=20)
        with anyio.fail_after(20):
            while not await listed():
                await anyio.sleep(0.05)
        await crash(client)  # tried again: it runs
