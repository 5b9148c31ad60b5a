"""The catalog: everything the supervisor offers, the pool that serves each entry, and the per-entry rules.

An entry is a tool, a resource, a resource template, a prompt or a completion handler; it is known by its
*reference* (``shared.kinds.entry_ref``): a tool by its name, any other kind by ``kind:key`` (a tool name
cannot hold ``:``), so one flat table maps (kind, key) → pool and a tool call looks up its name alone.

Each *pool* (a set of workers: ``asyncio``, ``trio``, ``trio-queue``) announces its entries in its
workers' READY; the catalog of a pool is the catalog of the last of its workers the router made routable.
The listed entries are the merge of every pool's catalog but a failed pool's, the first pool (in
configuration order) winning a reference two pools share. From them come the two tables ``Router.call``
reads on every call: ``tool_limits`` (``max_concurrency``) and ``retry_safe`` (read-only or idempotent
entries; every kind but a tool is read-only unless it says otherwise).

A quarantined tool (``quarantine.py``) is left out of the listed tools (``tools()``) but stays in every
table a call reads: its calls reach ``Router.call``, which refuses them with the quarantine's reason, and
the task queue still knows it.

The catalog is *settled* once every configured pool (one with workers meant to run) has announced a catalog
or was marked failed: a listing or a
call before then waits for it (bounded), so that a client starting with the supervisor does not see an
empty or partial list. An *optional* pool (one only remote nodes' workers fill, docs/scaling.md) is not
waited for, and its entries leave the listing when its last worker does (``forget``).

Not thread-safe: used from the supervisor's loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from shared.errors import ProtocolError, ToolDefinitionError
from shared.kinds import KINDS
from shared.metadata import ToolMetadata
from shared.protocol import Ready

SETTLE_TIMEOUT = 10.0
"""Longest a listing or a call waits for the catalog to settle before going on with what it has."""


class Catalog:
    """The listed tools of ``pools`` and where each tool is served.

    ``on_change()`` (a plain attribute) is called when the listed tools change after the catalog settled:
    a worker with other tools, a pool failed or back.
    """

    def __init__(self, pools: list[str], optional: frozenset[str] = frozenset()) -> None:
        self.pools = list(pools)
        """Every pool a worker may join (a pool scaled to 0 and back up stays one)."""
        self.configured = [pool for pool in pools if pool not in optional]
        """The pools meant to run here now: what readiness and settling wait for (``configure``)."""
        self.optional = optional
        """Pools only remote nodes fill (no local worker is configured for them): their entries leave the
        listing with the last remote worker (``forget``)."""
        self.pool_of: dict[str, str] = {}
        """Entry reference → the pool that serves it, also for an entry of a pool no worker announced yet."""
        self.tool_limits: dict[str, int] = {}
        """Entry reference → its ``max_concurrency``, for the listed entries that have one."""
        self.retry_safe: frozenset[str] = frozenset()
        """References of the listed entries a call may be sent twice to (``ToolMetadata.retry_safe``)."""
        self.task_support: dict[str, str] = {}
        """Tool name → ``"optional"`` or ``"required"``, for the listed tools that may run as MCP tasks."""
        self.task_after_input: frozenset[str] = frozenset()
        """Tools that become a task only where the function says so (``ToolMetadata.task_after_input``)."""
        self.failures: dict[str, str] = {}
        """Pool → why it is failed (its tools are not listed and calls to it fail fast)."""
        self.quarantined: frozenset[str] = frozenset()
        """Tools quarantined now: not listed, their calls refused (``quarantine.py``)."""
        self.version = 0
        """Bumped whenever the listed entries change."""
        self.kind_versions: dict[str, int] = dict.fromkeys(KINDS, 0)
        """Kind → bumped whenever the listed entries of that kind change (for the list_changed
        notifications of each list)."""
        self.last_changed: frozenset[str] = frozenset()
        """The kinds whose listed entries the latest change changed (what ``on_change`` is told about)."""
        self._by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        self.on_change: Callable[[], None] = lambda: None
        self._catalogs: dict[str, list[dict[str, Any]]] = {}
        self._tools: dict[str, dict[str, Any]] = {}
        self._unlisted: frozenset[str] = frozenset()
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
        self.pool_of.update((entry_ref_of(entry), pool) for entry in catalog)
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

    def configure(self, pools: set[str]) -> None:
        """Make ``pools`` the pools meant to run: a pool scaled to 0 is neither waited for nor "not
        ready"; one scaled up from 0 is."""
        self.configured = [pool for pool in self.pools if pool in pools]
        self._check_settled()

    def set_quarantined(self, tools: frozenset[str]) -> None:
        """Leave ``tools`` (the tools quarantined now) out of the listed tools, and list again the ones
        no longer quarantined."""
        self.quarantined = tools
        self._rebuild()

    def forget(self, pool: str) -> None:
        """Take ``pool``'s entries out of the listing: its last worker is gone and none will be restarted
        here (an optional pool). A call to one of them waits for a worker of the pool as usual."""
        if self._catalogs.pop(pool, None) is not None:
            self._load_errors.pop(pool, None)
            self._rebuild()

    # -- queries -----------------------------------------------------------------------------------

    def catalog_of(self, pool: str) -> list[dict[str, Any]] | None:
        """The catalog ``pool`` last announced, or None (do not modify)."""
        return self._catalogs.get(pool)

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
        return self._by_kind["tool"]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The listed entries of ``kind``, sorted by key (do not modify)."""
        return self._by_kind.get(kind, [])

    def tool(self, name: str) -> dict[str, Any] | None:
        """The catalog entry of the listed tool ``name``, or None."""
        entry = self._tools.get(name)
        return entry if entry is not None and entry.get("kind", "tool") == "tool" else None

    def entry(self, kind: str, key: str) -> dict[str, Any] | None:
        """The catalog entry of the listed entry (``kind``, ``key``), or None."""
        entry = self._tools.get(key if kind == "tool" else f"{kind}:{key}")
        return entry if entry is not None and entry.get("kind", "tool") == kind else None

    def entries(self) -> dict[str, dict[str, Any]]:
        """The listed tools: name → catalog entry, in merge order."""
        return {ref: entry for ref, entry in self._tools.items() if entry.get("kind", "tool") == "tool"}

    def load_errors(self) -> list[str]:
        """Tool module errors the workers reported, without repeats."""
        seen: dict[str, None] = {}
        for errors in self._load_errors.values():
            seen.update(dict.fromkeys(errors))
        return list(seen)

    # -- internals ---------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """The listed entries: the last catalog of every pool that is not marked failed, but the
        quarantined tools."""
        tools: dict[str, dict[str, Any]] = {}
        for pool in self.pools:
            if pool in self.failures:
                continue
            for entry in self._catalogs.get(pool, []):
                tools.setdefault(entry_ref_of(entry), entry)
        if tools == self._tools and self.quarantined == self._unlisted:
            return
        self._tools, self._unlisted = tools, self.quarantined
        by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for ref in sorted(tools):
            if ref not in self.quarantined:  # a tool's reference is its name; no other kind's can match
                entry = tools[ref]
                by_kind.setdefault(entry.get("kind", "tool"), []).append(entry)
        self.last_changed = frozenset(
            kind for kind, entries in by_kind.items() if entries != self._by_kind.get(kind)
        )
        for kind in self.last_changed:
            self.kind_versions[kind] = self.kind_versions.get(kind, 0) + 1
        self._by_kind = by_kind
        metadata = {name: ToolMetadata(**entry["metadata"]) for name, entry in tools.items()}
        self.tool_limits = {name: m.max_concurrency for name, m in metadata.items() if m.max_concurrency}
        self.retry_safe = frozenset(name for name, m in metadata.items() if m.retry_safe)
        self.task_support = {
            name: m.task_support for name, m in metadata.items() if m.task_support != "forbidden"
        }
        self.task_after_input = frozenset(name for name, m in metadata.items() if m.task_after_input)
        self.version += 1
        if self.settled.is_set():
            self.on_change()

    def _check_settled(self) -> None:
        if all(pool in self._catalogs or pool in self.failures for pool in self.configured):
            self.settled.set()


def entry_ref_of(entry: dict[str, Any]) -> str:
    """The reference of a catalog entry (``shared.kinds.entry_ref``): a tool's name, else ``kind:key``."""
    kind = entry.get("kind", "tool")
    return entry["name"] if kind == "tool" else f"{kind}:{entry['key']}"


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
            or entry.get("kind", "tool") not in KINDS
            or (entry.get("kind", "tool") != "tool" and not isinstance(entry.get("key"), str))
        ):
            raise ProtocolError(f"READY from {message.worker_id}: malformed catalog entry {str(entry)[:200]}")
        try:
            ToolMetadata(**entry["metadata"])
        except (TypeError, ToolDefinitionError) as exc:
            raise ProtocolError(
                f"READY from {message.worker_id}: bad metadata of {entry['name']!r}: {exc}"
            ) from None
