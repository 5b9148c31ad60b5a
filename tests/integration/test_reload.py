"""Rolling reload (SIGHUP), scaling and memory recycling: workers replaced without a failed call."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import eventually

pytestmark = pytest.mark.anyio

CONFIG = """
[workers]
asyncio = {asyncio}
trio = 1

[tools]
modules = [{modules}]
"""


def write_config(path: Path, modules: list[str], asyncio: int = 1) -> None:
    path.write_text(CONFIG.format(asyncio=asyncio, modules=", ".join(f'"{m}"' for m in modules)))


def slots(server: Any) -> list[dict[str, Any]]:
    """The workers /status lists, but the spares (which a reload replaces too, at their own pace)."""
    return [w for w in server.status()["workers"] if "-spare-" not in w["id"]]


def pids(server: Any) -> dict[str, int]:
    return {w["id"]: w["pid"] for w in server.status()["workers"] if w["state"] == "ready"}


async def steady_load(client: Client, stop: anyio.Event, outcomes: list[Any]) -> None:
    """Call both runtimes back to back until ``stop``; record every answer."""
    while not stop.is_set():
        for tool, arguments in (
            ("it_hold", {"seconds": 0.02}),
            ("whoami_trio", {}),
            ("echo", {"message": "x"}),
        ):
            outcomes.append(await client.call_tool(tool, arguments))


async def test_sighup_replaces_every_worker_with_zero_failed_calls(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "mcp.toml"
    write_config(config, ["tests.integration.call_tools"])
    server = supervisor_factory("--config", str(config))
    before = pids(server)
    outcomes: list[Any] = []
    stop = anyio.Event()

    def answered(count: int, by_pid: int) -> bool:
        return len(outcomes) >= count and any(
            o.structured_content and o.structured_content.get("pid") == by_pid for o in outcomes
        )

    async with Client(server.url) as client:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as load:
                for _ in range(4):
                    load.start_soon(steady_load, client, stop, outcomes)
                await eventually(lambda: answered(25, before["trio-0"]), "25 answers before the reload")
                at_sighup = len(outcomes)
                server.process.send_signal(signal.SIGHUP)
                after = await anyio.to_thread.run_sync(
                    lambda: server.wait_for(
                        lambda: (
                            (now := pids(server)).keys() == before.keys()
                            and not set(now.values()) & set(before.values())
                            and len(slots(server)) == len(before)
                            and now
                        ),
                        "every worker to be replaced",
                    )
                )
                during_reload = len(outcomes) - at_sighup
                await eventually(
                    lambda: answered(at_sighup + during_reload + 25, after["trio-0"]),
                    "25 answers after the reload",
                )
                stop.set()
    failed = [o for o in outcomes if o.is_error]
    assert during_reload > 0  # calls were in flight while the workers were replaced
    assert failed == []
    assert "reload done" in server.log()


async def test_reload_brings_new_tools_and_worker_counts(supervisor_factory: Any, tmp_path: Path) -> None:
    config = tmp_path / "mcp.toml"
    write_config(config, ["tests.integration.call_tools"])
    server = supervisor_factory("--config", str(config))
    async with Client(server.url) as client, Client(server.url, mode="2026-07-28") as stateless:
        assert "json_schema_2020_12_tool" not in {t.name for t in (await client.list_tools()).tools}
        # the fast path's cached listing (stateless era) must follow the catalog too
        assert "json_schema_2020_12_tool" not in {t.name for t in (await stateless.list_tools()).tools}
        write_config(
            config, ["tests.integration.call_tools", "tests.conformance.conformance_tools"], asyncio=2
        )
        server.process.send_signal(signal.SIGHUP)
        server.wait_for(lambda: "reload done" in server.log(), "the reload")
        names = {t.name for t in (await client.list_tools()).tools}
        assert "json_schema_2020_12_tool" in names
        assert "json_schema_2020_12_tool" in {t.name for t in (await stateless.list_tools()).tools}
        assert (await client.call_tool("test_simple_text", {})).is_error is False
    assert sorted(pids(server)) == ["asyncio-0", "asyncio-1", "trio-0", "trio-queue"]


async def test_a_replacement_that_cannot_start_leaves_the_old_workers_serving(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "mcp.toml"
    write_config(config, ["tests.integration.call_tools"])
    server = supervisor_factory("--config", str(config))
    before = pids(server)
    write_config(config, ["tests.integration.trio_crash_tools"])
    server.process.send_signal(signal.SIGHUP)
    server.wait_for(lambda: "replacement abandoned" in server.log(), "the reload to be abandoned")
    assert "trio-0 did not start: exit code 70" in server.log()
    assert pids(server) == before
    async with Client(server.url) as client:
        assert (await client.call_tool("whoami_trio", {})).structured_content["pid"] == before["trio-0"]
        assert (await client.call_tool("it_hold", {"seconds": 0.01})).is_error is False


async def test_an_invalid_configuration_on_reload_changes_nothing(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "mcp.toml"
    write_config(config, ["tests.integration.call_tools"])
    server = supervisor_factory("--config", str(config))
    before = pids(server)
    config.write_text("[workers]\nasyncio = 'many'\n")
    server.process.send_signal(signal.SIGHUP)
    server.wait_for(lambda: "reload abandoned, the configuration is invalid" in server.log(), "the refusal")
    assert "invalid workers_asyncio = 'many'" in server.log()
    assert pids(server) == before


async def test_a_worker_over_max_worker_rss_is_recycled_without_failing_calls(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory(
        "--tools",
        "tests.integration.call_tools",
        env={"MCP_SUPERVISOR_MAX_WORKER_RSS": str(300 * 1024 * 1024)},
    )
    old = pids(server)["asyncio-0"]
    async with Client(server.url) as client:
        await client.call_tool("it_grow", {"megabytes": 350})
        outcomes = []
        with anyio.fail_after(30):
            while pids(server).get("asyncio-0") in (old, None):
                outcomes.append(await client.call_tool("echo", {"message": "during"}))
                await anyio.sleep(0.05)
        outcomes.append(await client.call_tool("echo", {"message": "after"}))
    assert all(not o.is_error for o in outcomes)
    assert "over max_worker_rss" in server.log()
