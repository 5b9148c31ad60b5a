"""The ``tools/list`` result of the router's catalog, a page at a time."""

from __future__ import annotations

from typing import Any

import mcp_types as types

from .pagination import DEFAULT_PAGE_SIZE, page
from .router import Router

CATALOG_KEYS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
"""What a catalog entry shows a client; the rest (``metadata``) is the router's."""


class ToolListing:
    """The ``tools/list`` pages of the router's catalog; the tools are rebuilt only when the catalog
    changed, and the first page (what nearly every client asks for) is kept ready."""

    def __init__(self, router: Router, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.router = router
        self.page_size = page_size
        self._version = -1
        self._tools: list[dict[str, Any]] = []
        self._names: list[str] = []
        self._first = types.ListToolsResult(tools=[])

    async def result(self, cursor: str | None = None) -> types.ListToolsResult:
        """The page ``cursor`` points to (the first without one); waits (bounded) for every pool's first
        catalog.

        Raises:
            MCPError: -32602, an invalid cursor.
        """
        await self.router.wait_settled()
        if self._version != self.router.catalog_version:
            self._version = self.router.catalog_version
            self._tools = [{k: entry[k] for k in CATALOG_KEYS if k in entry} for entry in self.router.tools()]
            self._names = [tool["name"] for tool in self._tools]
            self._first = self._page(None)
        return self._first if cursor is None else self._page(cursor)

    def _page(self, cursor: str | None) -> types.ListToolsResult:
        tools, next_cursor = page(self._tools, self._names, cursor, self.page_size)
        return types.ListToolsResult.model_validate({"tools": tools, "nextCursor": next_cursor})
