"""Unit tests of the router's one call path for every kind of entry, over the fake socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.errors import INTERNAL_ERROR, CallError, UnknownToolError, WorkerLostError
from shared.protocol import CatalogChanged, Error, ResourceUpdated, Result
from tests.supervisor.fakes import WAIT, FakeWorker, running_router, tool_entry

pytestmark = pytest.mark.anyio


def kind_entry(kind: str, key: str, **metadata: Any) -> dict[str, Any]:
    """A catalog entry of another kind than a tool, as a worker announces it."""
    name = f"{kind}.fn"
    return {
        "kind": kind,
        "key": key,
        "name": name,
        "inputSchema": {"type": "object", "properties": {}},
        "metadata": {"name": name, "read_only": True, **metadata},
        "mcp": {"uri": key, "name": "fn"} if kind == "resource" else {},
    }


def connect_kinds(router: Any, socket: Any, worker_id: str, pid: int, pool: str) -> FakeWorker:
    catalog = [
        tool_entry("echo"),
        kind_entry("resource", "config://app"),
        kind_entry("resource_template", "users://{id}"),
        kind_entry("prompt", "echo"),  # the same key as a tool: another entry
    ]
    worker = FakeWorker(socket, worker_id, pid, pool, catalog)
    router.expect(worker_id, pid)
    worker.ready()
    return worker


async def test_every_kind_goes_out_as_one_call_frame_with_its_kind() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect_kinds(router, socket, "asyncio-0", 1, "asyncio")
        read = asyncio.create_task(router.call("config://app", None, timeout=5, kind="resource"))
        sent = await worker.next_call()
        assert (sent.kind, sent.tool, sent.arguments) == ("resource", "config://app", {})
        worker.send(Result(sent.call_id, {"contents": [{"text": "x", "mimeType": "text/plain"}]}))
        assert await asyncio.wait_for(read, WAIT) == {"contents": [{"text": "x", "mimeType": "text/plain"}]}

        prompt = asyncio.create_task(router.call("echo", {"a": "b"}, timeout=5, kind="prompt"))
        sent = await worker.next_call()
        assert (sent.kind, sent.tool) == ("prompt", "echo")
        worker.send(Error(sent.call_id, INTERNAL_ERROR, "prompt 'echo' failed: boom"))
        with pytest.raises(CallError, match="prompt 'echo' failed: boom"):
            await asyncio.wait_for(prompt, WAIT)

        tool = asyncio.create_task(router.call("echo", {}, timeout=5))
        sent = await worker.next_call()
        assert (sent.kind, sent.tool) == ("tool", "echo")
        worker.answer(sent, "hi")
        await asyncio.wait_for(tool, WAIT)
        assert set(router.stats.tools) == {"resource:config://app", "prompt:echo", "echo"}


async def test_an_entry_of_another_kind_is_unknown_under_a_kind_it_is_not() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        connect_kinds(router, socket, "asyncio-0", 1, "asyncio")
        with pytest.raises(UnknownToolError, match="unknown resource template 'config://app'"):
            await router.call("config://app", {}, timeout=5, kind="resource_template")
        with pytest.raises(UnknownToolError, match="unknown tool 'config://app'"):
            await router.call("config://app", {}, timeout=5)


async def test_a_resource_read_whose_worker_dies_is_retried_once_then_lost() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        first = connect_kinds(router, socket, "asyncio-0", 1, "asyncio")
        read = asyncio.create_task(
            router.call("users://{id}", {"id": "7"}, timeout=30, kind="resource_template")
        )
        await first.next_call()
        router.worker_gone(1, "worker asyncio-0 (pid 1) killed by SIGKILL")
        second = connect_kinds(router, socket, "asyncio-0", 2, "asyncio")
        again = await second.next_call()
        assert (again.kind, again.tool, again.arguments) == ("resource_template", "users://{id}", {"id": "7"})
        router.worker_gone(2, "worker asyncio-0 (pid 2) killed by SIGKILL")
        with pytest.raises(WorkerLostError, match="pid 2"):
            await asyncio.wait_for(read, WAIT)


async def test_a_published_update_reaches_the_callback() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect_kinds(router, socket, "asyncio-0", 1, "asyncio")
        updated: list[str] = []
        router.on_resource_updated = updated.append
        worker.send(ResourceUpdated("config://app"))
        assert updated == ["config://app"]


async def test_the_catalog_lists_each_kind_apart_and_bumps_only_the_changed_kinds() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        connect_kinds(router, socket, "asyncio-0", 1, "asyncio")
        catalog = router.catalog
        assert [entry["name"] for entry in router.tools()] == ["echo"]
        assert [entry["key"] for entry in catalog.of_kind("resource")] == ["config://app"]
        assert [entry["key"] for entry in catalog.of_kind("prompt")] == ["echo"]
        assert catalog.entry("prompt", "echo") is not None and catalog.entry("resource", "echo") is None
        assert catalog.entries().keys() == {"echo"}
        assert [link.tool_names for link in router.links()] == [["echo"]]
        before = dict(catalog.kind_versions)
        worker = FakeWorker(
            socket, "asyncio-0", 2, "asyncio", [tool_entry("echo"), kind_entry("prompt", "new")]
        )
        router.expect("asyncio-0", 2)
        worker.ready()
        changed = {kind for kind, version in catalog.kind_versions.items() if version != before[kind]}
        assert changed == {"resource", "resource_template", "prompt"} == catalog.last_changed


async def test_a_catalog_announced_after_ready_replaces_the_workers_and_is_told() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect_kinds(router, socket, "asyncio-0", 1, "asyncio")
        changes: list[set[str]] = []
        router.catalog.on_change = lambda: changes.append(set(router.catalog.last_changed))
        worker.send(
            CatalogChanged([tool_entry("echo"), tool_entry("added"), kind_entry("prompt", "new")], [], {})
        )
        assert [entry["name"] for entry in router.tools()] == ["added", "echo"]
        assert [entry["key"] for entry in router.catalog.of_kind("prompt")] == ["new"]
        assert changes and {"tool", "prompt"} <= changes[-1]
        worker.send(CatalogChanged([{"name": 3}], [], {}))  # unusable: logged and ignored
        assert [entry["name"] for entry in router.tools()] == ["added", "echo"]
