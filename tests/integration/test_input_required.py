"""The 2026-07-28 input-required flow against real processes (issue 13): a retry finds its call again
after a worker restart and after a supervisor restart, and a tampered requestState is refused."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import REPO, RunningSupervisor

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOOLS = ("--tools", "tests.integration.call_tools")
GRACE = types.ElicitResult(action="accept", content={"name": "Grace"})


def ctl(port: int, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "supervisor", "ctl", "--port", str(port), *args],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def first_round(server: RunningSupervisor, tool: str) -> types.InputRequiredResult:
    async with Client(server.url, mode="2026-07-28", elicitation_callback=_never) as client:
        result = await client.session.call_tool(tool, {}, allow_input_required=True)
    assert isinstance(result, types.InputRequiredResult), result
    assert result.request_state and result.input_requests
    return result


async def retry(server: RunningSupervisor, tool: str, first: types.InputRequiredResult) -> Any:
    """The retry's result, or the ``MCPError`` it was refused with."""
    (key,) = first.input_requests or {}
    async with Client(server.url, mode="2026-07-28", elicitation_callback=_never) as client:
        try:
            return await client.session.call_tool(
                tool, {}, input_responses={key: GRACE}, request_state=first.request_state
            )
        except MCPError as exc:
            return exc


async def _never(context: Any, params: Any) -> types.ElicitResult:
    raise AssertionError("this test answers the input requests itself")


def ready_pid(server: RunningSupervisor, worker_id: str, not_pid: int | None = None) -> Any:
    def ready() -> Any:
        worker = next((w for w in server.status()["workers"] if w["id"] == worker_id), None)
        if worker and worker["state"] == "ready" and worker["pid"] != not_pid:
            return worker["pid"]
        return None

    return server.wait_for(ready, f"{worker_id} ready")


@pytest.mark.parametrize(
    ("tool", "worker"), [("it_ask_user", "trio-0"), ("it_ask_user_asyncio", "asyncio-0")]
)
async def test_a_retry_after_a_worker_restart_completes(
    supervisor_factory: Any, tool: str, worker: str
) -> None:
    server = supervisor_factory(*TOOLS)
    before = ready_pid(server, worker)
    served = server.status()["supervisor"]["mcp_posts"]["fast_path"]
    first = await first_round(server, tool)
    assert server.status()["supervisor"]["mcp_posts"]["fast_path"] == served + 1  # round one: the fast path
    ctl(server.port, "restart", worker.split("-")[0])
    ready_pid(server, worker, not_pid=before)
    result = await retry(server, tool, first)
    assert isinstance(result, types.CallToolResult) and result.is_error is False
    assert result.structured_content == {"action": "accept", "content": {"name": "Grace"}}


async def test_a_retry_after_a_supervisor_restart_with_the_same_state_directory_completes(
    supervisor_factory: Any,
) -> None:
    state = {"XDG_STATE_HOME": tempfile.mkdtemp(prefix="state-")}
    first_server = supervisor_factory(*TOOLS, env=state)
    first = await first_round(first_server, "it_ask_user")
    assert first_server.stop() == 0
    second_server = supervisor_factory(*TOOLS, env=state)
    result = await retry(second_server, "it_ask_user", first)
    assert isinstance(result, types.CallToolResult) and result.is_error is False
    assert result.structured_content is not None and result.structured_content["content"] == {"name": "Grace"}


async def test_another_supervisor_sharing_the_key_accepts_the_state_and_a_foreign_one_refuses_it(
    supervisor_factory: Any,
) -> None:
    shared = {"MCP_SUPERVISOR_STATE_KEYS": "k" * 40}
    one = supervisor_factory(*TOOLS, env=shared, wait=False)  # the three start at once
    other = supervisor_factory(*TOOLS, env=shared, wait=False)
    foreign = supervisor_factory(*TOOLS, env={"MCP_SUPERVISOR_STATE_KEYS": "f" * 40}, wait=False)
    for server in (one, other, foreign):
        server.wait_ready()
    first = await first_round(one, "it_ask_user")
    result = await retry(other, "it_ask_user", first)
    assert isinstance(result, types.CallToolResult) and result.is_error is False
    refused = await retry(foreign, "it_ask_user", first)
    assert isinstance(refused, MCPError) and refused.error.code == -32602
    assert "invalid requestState" in refused.error.message


async def test_a_tampered_request_state_is_refused(supervisor_factory: Any) -> None:
    server = supervisor_factory(*TOOLS)
    first = await first_round(server, "it_ask_user")
    assert first.request_state is not None
    state = first.request_state
    tampered = first.model_copy(
        update={"request_state": state[:-4] + ("AAAA" if state[-4:] != "AAAA" else "BBBB")}
    )
    refused = await retry(server, "it_ask_user", tampered)
    assert isinstance(refused, MCPError) and refused.error.code == -32602
    assert refused.error.message.startswith("invalid requestState: it fails its integrity check")
    other_tool = await first_round(server, "it_ask_user_asyncio")
    misplaced = await retry(server, "it_ask_user", other_tool)
    assert isinstance(misplaced, MCPError) and "belongs to another request" in misplaced.error.message
