"""The workers connected to the router: ``WorkerLink`` (one incarnation) and ``Links`` (the table).

The router creates a link when it accepts a worker's READY and drops it when the arbiter reports the
process gone; the catalog, admission, liveness and worker-request parts read it, and the arbiter, /status
and /metrics read its counters. A link belongs to one *pool* (the set of workers a call is routed among:
``asyncio``, ``trio``, ``trio-queue``), which is not always the name of the worker's *runtime* (its event
loop).

A worker of a remote *node* (docs/scaling.md) reaches the router through its tcp listener, whose messages
carry the identity ``\0<node>\0<peer identity>`` (``remote_identity``): ``node`` is the name of the key
the connection proved, so a remote link's ``node`` is authenticated, not claimed. Its pid is a pid of
another host: everything the arbiter asks by pid (``of``, ``forget``, ``unhold``) sees local links only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ProtocolError
from shared.protocol import PROTOCOL_VERSION, CatalogChanged, Ready, Threads, check_ready

from .catalog import check_catalog, entry_ref_of
from .recent_errors import RecentErrors, result_message
from .slots import SINGLETON_POOLS

logger = logging.getLogger("mcp_supervisor.router")

REMOTE_MARK = b"\x00"
"""First byte of a remote worker's identity at the router; never that of a local worker (the listener
drops a local message whose identity starts with it)."""


def remote_identity(node: str, peer: bytes) -> bytes:
    """The router's identity for the peer ``peer`` of the tcp listener, whose key is named ``node``."""
    return REMOTE_MARK + node.encode() + REMOTE_MARK + peer


def node_of(identity: bytes) -> str | None:
    """The node of a remote worker's identity (``remote_identity``), None for a local worker's."""
    if identity[:1] != REMOTE_MARK:
        return None
    return identity[1:].split(REMOTE_MARK, 1)[0].decode(errors="replace")


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
    node: str | None = None
    """The remote node whose key the worker's connection proved; None for this supervisor's own worker."""

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
    pool served here and comes from the pid the arbiter announced with ``expect``. With ``remote`` on, a
    remote node's worker instead must be named after its node (``node-a:trio-0``), join a pool served
    here but a singleton one, and announce the entries that pool already has, if it has some
    (``catalog_of``): the router routes a pool's calls to any of its workers.
    """

    def __init__(
        self,
        pools: list[str],
        remote: bool = False,
        catalog_of: Callable[[str], list[dict[str, Any]] | None] = lambda pool: None,
    ) -> None:
        self.by_identity: dict[bytes, WorkerLink] = {}
        """The connected workers (the router's dispatch table)."""
        self.served = frozenset(pools)
        self.errors = RecentErrors()
        """The last errors of every worker (``recent_errors.py``); each link notes its own here."""
        self.remote_pools = self.served - SINGLETON_POOLS if remote else frozenset()
        """The pools remote workers may join."""
        self._catalog_of = catalog_of
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
                the arbiter did not start; for a remote worker, a name or pool not its node's to take, or
                other entries than its pool's.
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
        node = node_of(identity)
        if node is not None:
            self._check_remote(node, message)
        elif self._expected.get(message.pid) != message.worker_id:
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
            node=node,
        )
        self.by_identity[identity] = link
        for error in message.load_errors:
            logger.error("%s reported: %s", message.worker_id, error)
        if node is None and message.pid in self._held:
            link.held = link.draining = True
        return link

    def _check_remote(self, node: str, message: Ready) -> None:
        """Refuse (logged) a remote worker's READY that its node may not send.

        Raises:
            Refused: see ``accept``.
        """
        reason = None
        slot = message.worker_id.removeprefix(f"{node}:")
        if slot == message.worker_id or not slot:
            reason = f"its connection proved the key of node {node!r}, whose workers are named {node}:<slot>"
        elif message.pool not in self.remote_pools:
            reason = f"pool {message.pool!r} is not open to remote workers"
        else:
            current = self._catalog_of(message.pool)
            if current is not None:
                reason = entries_differ(message.pool, current, message.catalog)
        if reason is not None:
            logger.error("refusing READY from %s (node %s): %s", message.worker_id, node, reason)
            raise Refused(reason)

    def previous(self, link: WorkerLink) -> WorkerLink | None:
        """Another connected link of the same remote worker process (``link`` joined again after its node
        lost the router), or None; always None for a local worker. Another process of the same slot (a
        node's reload or restart, its old worker still draining) is another worker."""
        if link.node is None:
            return None
        return next(
            (
                other
                for other in self.by_identity.values()
                if other is not link
                and (other.node, other.worker_id, other.pid) == (link.node, link.worker_id, link.pid)
            ),
            None,
        )

    def recatalog(self, link: WorkerLink, message: CatalogChanged) -> bool:
        """Take the catalog a connected worker announced after READY; True when that worker is routed to
        (its catalog is then its pool's). A catalog the router could not use is logged and ignored, and so
        is a remote worker's other than its pool's: a node cannot change the entries of a shared pool."""
        as_ready = Ready(link.worker_id, link.pid, link.pool, PROTOCOL_VERSION, *message)
        try:
            check_catalog(as_ready)
        except ProtocolError as exc:
            logger.error("ignoring a new catalog: %s", exc)
            return False
        current = self._catalog_of(link.pool) if link.node is not None else None
        differ = entries_differ(link.pool, current, message.catalog) if current is not None else None
        if differ is not None:
            logger.error("ignoring a new catalog of %s (node %s): %s", link.worker_id, link.node, differ)
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
        """The connected local worker of process ``pid`` (a remote pid is another host's)."""
        return next(
            (link for link in self.by_identity.values() if link.pid == pid and link.node is None), None
        )


def entries_differ(pool: str, current: list[dict[str, Any]], announced: list[dict[str, Any]]) -> str | None:
    """Why a remote worker announcing ``announced`` cannot join ``pool``, whose entries are ``current``;
    None when they are the same entries (in any order)."""
    ours = {entry_ref_of(entry): entry for entry in current}
    theirs = {entry_ref_of(entry): entry for entry in announced}
    if ours == theirs:
        return None
    missing, extra = sorted(ours.keys() - theirs.keys()), sorted(theirs.keys() - ours.keys())
    if missing or extra:
        what = "; ".join(
            f"{label} {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for label, names in (("lacks", missing), ("adds", extra))
            if names
        )
        return f"its entries differ from pool {pool}'s ({what}): give the node the pool's tool modules"
    changed = sorted(ref for ref in ours if ours[ref] != theirs[ref])
    return (
        f"its entries differ from pool {pool}'s in the definition of {', '.join(changed[:5])}: "
        "the node runs another version of the tool modules"
    )
