"""The catalog: the tools the supervisor lists, the pool that serves each, and the per-tool rules.

Each *pool* (a set of workers: ``asyncio``, ``trio``, ``trio-queue``) announces its tools in its workers'
READY; the catalog of a pool is the catalog of the last of its workers the router made routable. The
listed tools are the merge of every pool's catalog but a failed pool's, the first pool (in configuration
order) winning a name two pools share. From the listed tools come the two tables ``Router.call`` reads on
every call: ``tool_limits`` (``max_concurrency``) and ``retry_safe`` (read-only or idempotent tools).

The catalog is *settled* once every pool has announced a catalog or was marked failed: a listing or a
call before then waits for it (bounded), so that a client starting with the supervisor does not see an
empty or partial list.

Not thread-safe: used from the supervisor's loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from shared.errors import ProtocolError, ToolDefinitionError
from shared.metadata import ToolMetadata
from shared.protocol import Ready

SETTLE_TIMEOUT = 10.0
"""Longest a listing or a call waits for the catalog to settle before going on with what it has."""


class Catalog:
    """The listed tools of ``pools`` and where each tool is served.

    ``on_change()`` (a plain attribute) is called when the listed tools change after the catalog settled:
    a worker with other tools, a pool failed or back.
    """

    def __init__(self, pools: list[str]) -> None:
        self.pools = list(pools)
        self.pool_of: dict[str, str] = {}
        """Tool name → the pool that serves it, also for a tool of a pool no worker announced yet."""
        self.tool_limits: dict[str, int] = {}
        """Tool name → its ``max_concurrency``, for the listed tools that have one."""
        self.retry_safe: frozenset[str] = frozenset()
        """Names of the listed tools a call may be sent twice to (``ToolMetadata.retry_safe``)."""
        self.failures: dict[str, str] = {}
        """Pool → why it is failed (its tools are not listed and calls to it fail fast)."""
        self.version = 0
        """Bumped whenever the listed tools change."""
        self.on_change: Callable[[], None] = lambda: None
        self._catalogs: dict[str, list[dict[str, Any]]] = {}
        self._tools: dict[str, dict[str, Any]] = {}
        self._load_errors: dict[str, list[str]] = {}
        self.settled = asyncio.Event()
        """Set once every pool has announced its catalog or was marked failed."""
        self._check_settled()

    # -- changes -----------------------------------------------------------------------------------

    def take(
        self, pool: str, catalog: list[dict[str, Any]], load_errors: list[str], elsewhere: dict[str, str]
    ) -> None:
        """Make ``catalog`` (of a worker the router just made routable, with its ``load_errors`` and
        ``elsewhere`` map) the catalog of ``pool``, and clear the pool's failure mark."""
        self._catalogs[pool] = catalog
        self._load_errors[pool] = list(load_errors)
        self.pool_of.update(elsewhere)
        self.pool_of.update((entry["name"], pool) for entry in catalog)
        self.failures.pop(pool, None)
        self._rebuild()
        self._check_settled()

    def set_failed(self, pool: str, reason: str | None) -> None:
        """Mark ``pool`` failed with ``reason`` (its tools leave the listing), or clear the mark with None."""
        if reason is None:
            self.failures.pop(pool, None)
        else:
            self.failures[pool] = reason
        self._rebuild()
        self._check_settled()

    # -- queries -----------------------------------------------------------------------------------

    async def wait_settled(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every pool has announced its catalog once or was marked failed, or ``timeout``
        seconds; never raises ``TimeoutError``.

        Cancellation: only the wait is cancelled.
        """
        if not self.settled.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settled.wait(), timeout)

    def tools(self) -> list[dict[str, Any]]:
        """The listed tools (catalog entries), sorted by name."""
        return [self._tools[name] for name in sorted(self._tools)]

    def tool(self, name: str) -> dict[str, Any] | None:
        """The catalog entry of the listed tool ``name``, or None."""
        return self._tools.get(name)

    def entries(self) -> dict[str, dict[str, Any]]:
        """The listed tools: name → catalog entry, in merge order (do not modify)."""
        return self._tools

    def load_errors(self) -> list[str]:
        """Tool module errors the workers reported, without repeats."""
        seen: dict[str, None] = {}
        for errors in self._load_errors.values():
            seen.update(dict.fromkeys(errors))
        return list(seen)

    # -- internals ---------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """The listed tools: the last catalog of every pool that is not marked failed."""
        tools: dict[str, dict[str, Any]] = {}
        for pool in self.pools:
            if pool in self.failures:
                continue
            for entry in self._catalogs.get(pool, []):
                tools.setdefault(entry["name"], entry)
        if tools == self._tools:
            return
        self._tools = tools
        metadata = {name: ToolMetadata(**entry["metadata"]) for name, entry in tools.items()}
        self.tool_limits = {name: m.max_concurrency for name, m in metadata.items() if m.max_concurrency}
        self.retry_safe = frozenset(name for name, m in metadata.items() if m.retry_safe)
        self.version += 1
        if self.settled.is_set():
            self.on_change()

    def _check_settled(self) -> None:
        if all(pool in self._catalogs or pool in self.failures for pool in self.pools):
            self.settled.set()


def check_catalog(message: Ready) -> None:
    """Refuse a READY whose catalog the router could not use.

    Raises:
        ProtocolError: the catalog is not a list of entries with a name, an input schema and valid
            metadata, or ``elsewhere`` is not a map.
    """
    if not isinstance(message.catalog, list) or not isinstance(message.elsewhere, dict):
        raise ProtocolError(f"READY from {message.worker_id}: catalog must be a list and elsewhere a map")
    for entry in message.catalog:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("inputSchema"), dict)
            or not isinstance(entry.get("metadata"), dict)
        ):
            raise ProtocolError(f"READY from {message.worker_id}: malformed catalog entry {str(entry)[:200]}")
        try:
            ToolMetadata(**entry["metadata"])
        except (TypeError, ToolDefinitionError) as exc:
            raise ProtocolError(
                f"READY from {message.worker_id}: bad metadata of {entry['name']!r}: {exc}"
            ) from None
