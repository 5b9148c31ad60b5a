"""Unit tests of supervisor/pagination.py and the listings that page with it."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from supervisor.listing import ToolListing
from supervisor.pagination import page

KEYS = ["a", "b", "c", "d", "e"]


def walk(keys: list[str], size: int) -> list[list[str]]:
    """Every page of ``keys``, following the cursors."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        items, cursor = page(keys, keys, cursor, size)
        pages.append(list(items))
        if cursor is None:
            return pages


def test_a_list_that_fits_is_one_page_without_a_cursor() -> None:
    assert page(KEYS, KEYS, None, 5) == (KEYS, None)
    assert page(KEYS, KEYS, None, 500) == (KEYS, None)


@pytest.mark.parametrize(
    ("size", "pages"),
    [(2, [["a", "b"], ["c", "d"], ["e"]]), (1, [[k] for k in KEYS]), (4, [["a", "b", "c", "d"], ["e"]])],
)
def test_following_the_cursors_gives_every_entry_once_in_order(size: int, pages: list[list[str]]) -> None:
    assert walk(KEYS, size) == pages


def test_a_cursor_survives_a_catalog_change_between_pages() -> None:
    first, cursor = page(KEYS, KEYS, None, 2)
    assert list(first) == ["a", "b"] and cursor is not None
    changed = ["a", "aa", "c", "cc", "e"]  # "b" went away, "aa" (before the cursor) and "cc" came

    rest, cursor = page(changed, changed, cursor, 2)

    assert list(rest) == ["c", "cc"]
    assert page(changed, changed, cursor, 2) == (["e"], None)


@pytest.mark.parametrize("cursor", ["%%%", "\u00e9t\u00e9", "_w"])
def test_a_cursor_this_server_did_not_give_is_invalid_params(cursor: str) -> None:
    with pytest.raises(MCPError) as caught:
        page(KEYS, KEYS, cursor, 2)
    assert caught.value.error.code == -32602
    assert "invalid cursor" in caught.value.error.message


class FakeRouter:
    """What ToolListing reads of the router."""

    def __init__(self, names: list[str]) -> None:
        self.catalog_version = 1
        self._names = names

    async def wait_settled(self) -> None:
        pass

    def tools(self) -> list[dict[str, Any]]:
        return [{"name": name, "inputSchema": {"type": "object"}, "metadata": {}} for name in self._names]


@pytest.mark.anyio
async def test_tool_listing_pages_and_rebuilds_when_the_catalog_changes() -> None:
    router = FakeRouter(["alpha", "echo"])
    listing = ToolListing(router, page_size=1)  # type: ignore[arg-type]

    first = await listing.result()
    assert [t.name for t in first.tools] == ["alpha"] and first.next_cursor is not None
    second = await listing.result(first.next_cursor)
    assert [t.name for t in second.tools] == ["echo"] and second.next_cursor is None

    router._names = ["alpha", "beta", "echo"]
    router.catalog_version = 2
    again = await listing.result(first.next_cursor)
    assert [t.name for t in again.tools] == ["beta"] and again.next_cursor is not None
    assert "metadata" not in again.tools[0].model_dump()
