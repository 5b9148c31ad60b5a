"""The ``tools/list`` result of the router's catalog, a page at a time, for what a caller may see."""

from __future__ import annotations

from typing import Any

import mcp_types as types

from .pagination import DEFAULT_PAGE_SIZE, page
from .router import Router

CATALOG_KEYS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
"""What a catalog entry shows a client; the rest (``metadata``) is the router's."""

View = frozenset[str] | None
"""Which tools a caller sees: ``None`` every tool, else those whose scopes are all in the set."""


class ToolListing:
    """The ``tools/list`` pages of the router's catalog; the tools are rebuilt only when the catalog
    changed, and the first page of each view (what nearly every client asks for) is kept ready."""

    def __init__(self, router: Router, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.router = router
        self.page_size = page_size
        self._version = -1
        self._entries: list[tuple[dict[str, Any], frozenset[str]]] = []
        self._declared: frozenset[str] = frozenset()
        self._views: dict[View, tuple[list[dict[str, Any]], list[str], types.ListToolsResult]] = {}

    def view(self, scopes: frozenset[str] | None) -> View:
        """The view of a caller holding ``scopes`` (``None``: authorization is off): the scopes that
        matter to this catalog, so callers that see the same tools share one view."""
        self._refresh()
        if scopes is None or not self._declared:
            return None
        return scopes & self._declared

    async def result(self, cursor: str | None = None, view: View = None) -> types.ListToolsResult:
        """The page ``cursor`` points to (the first without one) of ``view``; waits (bounded) for every
        pool's first catalog.

        Raises:
            MCPError: -32602, an invalid cursor.
        """
        await self.router.wait_settled()
        self._refresh()
        shown = self._views.get(view)
        if shown is None:
            tools = [tool for tool, needs in self._entries if view is None or needs <= view]
            names = [tool["name"] for tool in tools]
            shown = (tools, names, self._page(tools, names, None))
            self._views[view] = shown
        return shown[2] if cursor is None else self._page(shown[0], shown[1], cursor)

    def _refresh(self) -> None:
        if self._version == self.router.catalog_version:
            return
        self._version = self.router.catalog_version
        self._entries = [
            (
                {k: entry[k] for k in CATALOG_KEYS if k in entry},
                frozenset(entry.get("metadata", {}).get("scopes") or ()),
            )
            for entry in self.router.tools()
        ]
        self._declared = frozenset().union(*(needs for _, needs in self._entries))
        self._views = {}

    def _page(
        self, tools: list[dict[str, Any]], names: list[str], cursor: str | None
    ) -> types.ListToolsResult:
        found, next_cursor = page(tools, names, cursor, self.page_size)
        return types.ListToolsResult.model_validate({"tools": found, "nextCursor": next_cursor})
