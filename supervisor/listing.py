"""The ``tools/list`` result of the router's catalog."""

from __future__ import annotations

import mcp_types as types

from .router import Router

CATALOG_KEYS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
"""What a catalog entry shows a client; the rest (``metadata``) is the router's."""


class ToolListing:
    """The ``tools/list`` result of the router's catalog, rebuilt only when the catalog changed."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._version = -1
        self._result = types.ListToolsResult(tools=[])

    async def result(self) -> types.ListToolsResult:
        """The current listing; waits (bounded) for every runtime's first catalog."""
        await self.router.wait_settled()
        if self._version != self.router.catalog_version:
            self._version = self.router.catalog_version
            tools = [{k: entry[k] for k in CATALOG_KEYS if k in entry} for entry in self.router.tools()]
            self._result = types.ListToolsResult.model_validate({"tools": tools})
        return self._result
