"""Issue 17, with real workers: cancelled sync tools that ignore their cancellation keep their threads;
the worker reports it, the router routes around the saturated worker, and /status says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.conftest import text

pytestmark = pytest.mark.anyio


async def test_issue_17_a_worker_whose_only_thread_a_cancelled_call_holds_gets_no_sync_calls(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    server = supervisor_factory(
        "--tools",
        "tests.integration.stubborn_tools",
        "--workers-asyncio",
        "2",
        "--workers-trio",
        "0",
        "--spare-workers",
        "0",
        "--no-task-queue",
        env={"MCP_SUPERVISOR_WORKER_THREADS": "1"},
    )
    release = tmp_path / "release"
    try:
        async with Client(server.url) as client:
            timed_out = await client.call_tool("it_stubborn", {"release_file": str(release)})
            assert timed_out.is_error is True and "timed out after 1 s" in text(timed_out)
            held = server.wait_for(
                lambda: next((w for w in server.status()["workers"] if w["saturated"]), None),
                "a worker to report its thread held by the cancelled call",
            )
            assert held["saturated"] == (
                "1 of 1 sync-tool threads busy, 1 held by cancelled calls (it_stubborn ×1)"
            )
            assert held["sync_threads"] == {"busy": 1, "size": 1, "held": {"it_stubborn": 1}}
            for _ in range(4):  # before: the tie (0 and 0 in flight) sent each one to the held worker
                answered = await client.call_tool("it_quick_sync", {})
                assert answered.is_error is False, text(answered)
                assert answered.structured_content["pid"] != held["pid"]
    finally:
        release.touch()
    server.wait_for(
        lambda: all(w["saturated"] is None for w in server.status()["workers"]),
        "the held thread to be released",
    )
