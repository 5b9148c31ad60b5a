"""The workers connected to the router: ``WorkerLink`` (one incarnation) and ``Links`` (the table).

The router creates a link when it accepts a worker's READY and drops it when the arbiter reports the
process gone; the catalog, admission, liveness and worker-request parts read it, and the arbiter, /status
and /metrics read its counters. A link belongs to one *pool* (the set of workers a call is routed among:
``asyncio``, ``trio``, ``trio-queue``), which is not always the name of the worker's *runtime* (its event
loop).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ProtocolError
from shared.protocol import PROTOCOL_VERSION, CatalogChanged, Ready, Threads, check_ready

from .catalog import check_catalog
from .recent_errors import RecentErrors, result_message

logger = logging.getLogger("mcp_supervisor.router")


@dataclass(eq=False)
class WorkerLink:
    """One worker incarnation (``worker_id`` and ``pid``) connected as the peer ``identity``."""

    worker_id: str
    pool: str
    pid: int
    identity: bytes
    catalog: list[dict[str, Any]]
    load_errors: list[str]
    elsewhere: dict[str, str] = field(default_factory=dict)
    """Entries of the other runtimes found in the worker's modules: reference → runtime (routed to the pool of
    that name)."""
    last_heard: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` of the last frame from the worker."""
    in_flight: set[int] = field(default_factory=set)
    """Ids of the calls the worker holds."""
    own_requests: int = 0
    """Requests the worker made on its own behalf that are being answered (the task queue's task runs):
    a drain waits for them as for its calls."""
    draining: bool = False
    """Routed no new call: drained, held, or silent."""
    held: bool = False
    """A replacement candidate: connected, not routed to until promoted."""
    silent: bool = False
    """Declared dead for missing heartbeats; the arbiter is killing it."""
    calls_served: int = 0
    calls_failed: int = 0
    errors: RecentErrors | None = None
    """Where the errors it answers are noted (``Links`` gives every link its table's ring)."""
    threads: Threads = Threads(0, 0, {})
    """The worker's pool of threads for sync tools as it last reported it (THREADS)."""
    held_threads: int = 0
    """Threads held by calls that were cancelled (counted as load: the router forgot those calls)."""
    saturated: bool = False
    """Every thread of the pool is busy: a sync call sent there waits for one (routed elsewhere if it can)."""

    def set_threads(self, threads: Threads) -> None:
        """Take the state of the thread pool the worker reported."""
        self.threads = threads
        self.held_threads = sum(threads.held.values())
        self.saturated = 0 < threads.size <= threads.busy

    def saturation(self) -> str | None:
        """Why the worker's thread pool is full, in words for /status; None when it is not."""
        if not self.saturated:
            return None
        busy, size, held = self.threads
        by = ", ".join(f"{tool} ×{count}" for tool, count in sorted(held.items()))
        held_by = f", {self.held_threads} held by cancelled calls ({by})" if held else ""
        return f"{busy} of {size} sync-tool threads busy{held_by}"

    def record_result(self, ref: str, result: dict[str, Any]) -> None:
        """Count a RESULT of this worker for entry ``ref``: served, or failed (and noted in ``errors``)
        when it is an ``isError`` result."""
        if result.get("isError"):
            self.record_error(ref, result_message(result))
        else:
            self.calls_served += 1

    def record_error(self, ref: str, message: str) -> None:
        """Count a call of entry ``ref`` this worker answered with an error, and note it in ``errors``."""
        self.calls_failed += 1
        if self.errors is not None:
            self.errors.call_failed(self.worker_id, self.pid, ref, message)

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools among the worker's catalog entries (an entry without ``kind``)."""
        return [entry["name"] for entry in self.catalog if "kind" not in entry]


class Refused(Exception):
    """A READY the router does not accept; the message is the reason sent back in STOP ``refused: ...``."""


class Links:
    """The workers connected to the router, by peer identity, and the incarnations the arbiter expects.

    A worker is accepted when its READY speaks this protocol version, carries a usable catalog, names a
    pool served here and comes from the pid the arbiter announced with ``expect``.
    """

    def __init__(self, pools: list[str]) -> None:
        self.by_identity: dict[bytes, WorkerLink] = {}
        """The connected workers (the router's dispatch table)."""
        self.served = frozenset(pools)
        self.errors = RecentErrors()
        """The last errors of every worker (``recent_errors.py``); each link notes its own here."""
        self._expected: dict[int, str] = {}
        self._held: set[int] = set()

    def expect(self, worker_id: str, pid: int, *, held: bool) -> None:
        """Accept a READY from ``worker_id`` only when it comes from ``pid``; a *held* one is connected but
        left draining until ``promote(pid)``."""
        self._expected[pid] = worker_id
        if held:
            self._held.add(pid)

    def accept(self, identity: bytes, message: Ready) -> WorkerLink:
        """The link of the worker whose READY came from the peer ``identity``, now connected (draining
        and ``held`` when it was expected held). Logs a refusal.

        Raises:
            Refused: another protocol version, an unusable catalog, a pool not served here, or a process
                the arbiter did not start.
        """
        try:
            check_ready(message)
            check_catalog(message)
        except ProtocolError as exc:
            logger.error("%s", exc)
            raise Refused(str(exc)) from None
        if message.pool not in self.served:
            logger.error(
                "refusing READY from %s: pool %r is not served here", message.worker_id, message.pool
            )
            raise Refused(f"pool {message.pool!r} is not served here")
        if self._expected.get(message.pid) != message.worker_id:
            logger.warning(
                "refusing READY from %s pid %d: not the process the arbiter started",
                message.worker_id,
                message.pid,
            )
            raise Refused("unexpected worker")
        link = WorkerLink(
            message.worker_id,
            message.pool,
            message.pid,
            identity,
            message.catalog,
            message.load_errors,
            message.elsewhere,
            errors=self.errors,
        )
        self.by_identity[identity] = link
        for error in message.load_errors:
            logger.error("%s reported: %s", message.worker_id, error)
        if message.pid in self._held:
            link.held = link.draining = True
        return link

    def recatalog(self, link: WorkerLink, message: CatalogChanged) -> bool:
        """Take the catalog a connected worker announced after READY; True when that worker is routed to
        (its catalog is then its pool's). A catalog the router could not use is logged and ignored."""
        as_ready = Ready(link.worker_id, link.pid, link.pool, PROTOCOL_VERSION, *message)
        try:
            check_catalog(as_ready)
        except ProtocolError as exc:
            logger.error("ignoring a new catalog: %s", exc)
            return False
        link.catalog, link.load_errors, link.elsewhere = (
            message.catalog,
            message.load_errors,
            message.elsewhere,
        )
        return not link.held and not link.draining

    def unhold(self, pid: int) -> WorkerLink | None:
        """The connected worker ``pid`` if it was held, now no longer held nor draining; else None."""
        self._held.discard(pid)
        link = self.of(pid)
        if link is None or not link.held:
            return None
        link.held = link.draining = False
        return link

    def forget(self, pid: int) -> WorkerLink | None:
        """Expect nothing more from process ``pid`` (it exited); its link, if it is connected."""
        self._expected.pop(pid, None)
        self._held.discard(pid)
        return self.of(pid)

    def of(self, pid: int) -> WorkerLink | None:
        return next((link for link in self.by_identity.values() if link.pid == pid), None)
