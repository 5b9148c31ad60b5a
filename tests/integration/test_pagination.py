"""Every list served a page at a time (``list_page_size``), followed to its end by the official client in
both protocol eras: the first ``tools/list`` page of the stateless era comes from the fast path, the
others from the SDK path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import RunningSupervisor, spawn_supervisor

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
PAGE_SIZE = 2


@pytest.fixture(scope="module")
def server() -> Any:
    running = spawn_supervisor(
        "--tools", "tests.integration.kind_tools", env={"MCP_SUPERVISOR_LIST_PAGE_SIZE": str(PAGE_SIZE)}
    )
    yield running
    assert running.stop() == 0


async def every_page(
    fetch: Callable[[str | None], Awaitable[Any]], names: Callable[[Any], list[str]]
) -> list[list[str]]:
    """The names on each page, following ``nextCursor`` to the end (bounded)."""
    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(100):
        result = await fetch(cursor)
        pages.append(names(result))
        cursor = result.next_cursor
        if cursor is None:
            return pages
    raise AssertionError("the cursors never ended")


@pytest.mark.parametrize("mode", MODES)
async def test_every_list_pages_through_everything_once(server: RunningSupervisor, mode: str) -> None:
    async with Client(server.url, mode=mode) as client:  # type: ignore[arg-type]
        tools = await every_page(lambda c: client.list_tools(cursor=c), lambda r: [t.name for t in r.tools])
        resources = await every_page(
            lambda c: client.list_resources(cursor=c), lambda r: [str(x.uri) for x in r.resources]
        )
        templates = await every_page(
            lambda c: client.list_resource_templates(cursor=c),
            lambda r: [t.uri_template for t in r.resource_templates],
        )
        prompts = await every_page(
            lambda c: client.list_prompts(cursor=c), lambda r: [p.name for p in r.prompts]
        )

    for pages in (tools, resources, templates, prompts):
        assert all(0 < len(names) <= PAGE_SIZE for names in pages), pages
        flat = [name for names in pages for name in names]
        assert flat == sorted(set(flat)), pages  # each once, in key order
    assert len(tools) > 1 and "it_touch" in {name for names in tools for name in names}
    assert len(resources) > 1 and {"it://asyncio/text", "it://trio/blob"} <= {n for p in resources for n in p}
    assert [n for p in templates for n in p] == ["it://asyncio/users/{id}", "it://trio/items/{item}"]
    assert [n for p in prompts for n in p] == ["it_ask", "it_greet", "it_picture"]


async def test_a_cursor_the_server_did_not_give_is_invalid_params(server: RunningSupervisor) -> None:
    async with Client(server.url, mode="legacy") as client:  # type: ignore[arg-type]
        with pytest.raises(MCPError) as caught:
            await client.list_tools(cursor="%%%")
    assert caught.value.error.code == -32602
