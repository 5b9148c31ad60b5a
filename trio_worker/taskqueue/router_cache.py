"""What the router last said about its tools and its worker processes, asked again when it is too old.

The engine asks the router (through its ``Executor``) for the tool catalog when it checks a payload and
for the live worker processes when it places tasks. Asking on every call would put a round trip on every
submission and every scheduler round, so the answers are kept for ``CATALOG_TTL`` and ``WORKERS_TTL``.

Failure: a question the router does not answer within ``ROUTER_TIMEOUT``, or answers with an error, keeps
the last answer. The catalog raises only when it never had one; a failed worker list is logged once per
distinct problem (not once a second) and its error is kept for ``worker_status`` to report.

Concurrency and cancellation: used on the engine's Trio thread only. Two refreshes at once may both ask
the router; the later answer wins, which is harmless. A refresh cancelled while it waits for the router
keeps the last answer.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from .errors import QueueUnavailableError
from .executor import Executor

logger = logging.getLogger("mcp_supervisor.taskqueue")

CATALOG_TTL = 2.0
"""Seconds a fetched tool catalog is reused (a task type missing from it triggers a fresh fetch)."""
WORKERS_TTL = 1.0
"""Seconds a fetched list of worker processes is reused by the scheduler."""
ROUTER_TIMEOUT = 10.0
"""Seconds to wait for the router to list tools or workers before using the last known answer."""


class RouterCache:
    """The tool catalog and the worker processes, as the router last listed them."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._catalog: dict[str, dict[str, Any]] | None = None
        self._catalog_at = -math.inf
        self.workers: list[dict[str, Any]] = []
        """The live worker processes, as ``Executor.workers`` last listed them."""
        self.workers_error: str | None = None
        """Why the last attempt to list the worker processes failed (``None``: it did not)."""
        self._workers_at = -math.inf

    async def catalog(self, need: str | None = None) -> dict[str, dict[str, Any]]:
        """The tool catalog, fetched again when older than ``CATALOG_TTL`` or when it lacks ``need``.

        Raises:
            QueueUnavailableError: the router cannot be asked and no earlier answer is known.
        """
        fresh = trio.current_time() - self._catalog_at < CATALOG_TTL
        if self._catalog is not None and fresh and (need is None or need in self._catalog):
            return self._catalog
        try:
            with trio.fail_after(ROUTER_TIMEOUT):
                catalog = await self._executor.tools()
        except (Exception, trio.TooSlowError) as exc:
            if self._catalog is not None:
                logger.warning("task queue: cannot refresh the tool catalog: %s", exc)
                return self._catalog
            raise QueueUnavailableError(f"cannot read the tool catalog from the router: {exc}") from None
        self._catalog, self._catalog_at = dict(catalog), trio.current_time()
        return self._catalog

    async def catalog_quietly(self) -> dict[str, dict[str, Any]] | None:
        """Like ``catalog``, but ``None`` instead of raising (for work that can go on without it)."""
        try:
            return await self.catalog()
        except QueueUnavailableError:
            return None

    async def refresh_workers(self, max_age: float | None = None) -> None:
        """Fetch the live worker processes unless the last answer is younger than ``max_age`` seconds
        (``None``: ``WORKERS_TTL``). Never raises: a failure keeps the last answer (see the module)."""
        if max_age is None:
            max_age = WORKERS_TTL
        if trio.current_time() - self._workers_at < max_age:
            return
        try:
            with trio.fail_after(ROUTER_TIMEOUT):
                workers = await self._executor.workers()
        except (Exception, trio.TooSlowError) as exc:
            error = f"cannot list the worker processes: {exc}"
            if error != self.workers_error:  # once per distinct problem, not once a second
                logger.warning("task queue: %s", error)
            self.workers_error = error
            return
        self.workers, self._workers_at, self.workers_error = list(workers), trio.current_time(), None

    def tool_timeout(self, name: str) -> float | None:
        """The tool's own ``timeout_seconds`` from the last catalog, if it has one."""
        entry = (self._catalog or {}).get(name) or {}
        value = (entry.get("metadata") or {}).get("timeout_seconds")
        return float(value) if isinstance(value, (int, float)) and value > 0 else None
