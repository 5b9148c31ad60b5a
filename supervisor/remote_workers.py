"""The router's rules for the workers of remote nodes (``worker_listen``, docs/scaling.md).

A remote worker is routed to like a local one once its READY is accepted (``links.Links.accept``), but it
is not the arbiter's child: nothing here signals a process. What the router does instead:

- it leaves when its connection goes: a send refused with ``EHOSTUNREACH`` (the node closed it, or ZeroMQ's
  transport heartbeat did) drops it at once, once what the connection delivered before was read, and silence for the liveness window (a stopped node, a cut
  link) drops it at the next heartbeat tick. Dropping answers every call it held now, with
  ``WorkerLostError`` (retried on another worker when the entry is read-only or idempotent), and sends
  STOP so that a node that still hears it joins again with a new connection;
- a message from a remote identity the router does not know (it restarted, or dropped that worker) is
  answered with STOP, so the node joins again instead of talking to nobody;
- a worker that joins again under the same name replaces its old link at once;
- LEAVING (its node drains it) routes it no new call; its calls finish;
- when the supervisor stops, its remote workers are drained with its own (``release``) and told to STOP;
  their nodes join the next supervisor on that address;
- when the last worker of a pool that only nodes fill is gone, the pool's entries leave the listing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import zmq

from shared.protocol import Drain, Leaving, Message, Stop

from .admission import Admission
from .catalog import Catalog
from .links import REMOTE_MARK, Links, WorkerLink

logger = logging.getLogger("mcp_supervisor.router")

RELEASE_POLL = 0.02
"""How often ``release`` looks whether the drained remote workers' calls are over."""


class RemoteWorkers:
    """Remote links of the router's table ``links`` (read only here).

    ``send(identity, message)`` queues a frame and never raises; ``drop(link, reason)`` takes a link out of
    the table and answers its calls (the router's ``_drop_link``).
    """

    def __init__(
        self,
        links: Links,
        catalog: Catalog,
        admission: Admission,
        send: Callable[[bytes, Message], None],
        drop: Callable[[WorkerLink, str], None],
    ) -> None:
        self._table = links
        self._links = links.by_identity
        self._catalog = catalog
        self._admission = admission
        self._send = send
        self._drop = drop
        self._stopping = False
        self.receive_waiting: Callable[[], None] = lambda: None
        """Hands the messages the listener has already received to the router (set by the router)."""

    def links(self) -> list[WorkerLink]:
        """The connected remote workers, by node and worker id."""
        return sorted(
            (link for link in self._links.values() if link.node is not None),
            key=lambda link: (link.node or "", link.worker_id),
        )

    def joined(self, link: WorkerLink) -> None:
        """``link`` was accepted; an old link of the same process (it joined again) is dropped now. Once
        ``release`` began, a worker that joins is told at once that the supervisor is stopping."""
        previous = self._table.previous(link)
        if self._stopping:
            self._drop(link, "the supervisor is stopping")
            self._send(link.identity, Stop("the supervisor is stopping"))
            return
        if previous is not None:
            self._drop(previous, f"{describe(previous)} joined again on a new connection")
        logger.info(
            "%s joined pool %s with %d entries", describe(link), link.pool, len(link.catalog),
            extra={"worker": link.worker_id},
        )  # fmt: skip

    def unknown(self, identity: bytes, message: Message) -> None:
        """A message from a remote identity that has no link: tell it to join again."""
        if not isinstance(message, Stop):
            self._send(identity, Stop("rejoin: this router does not know the worker (restarted or dropped)"))

    def silent(self, link: WorkerLink) -> None:
        """``link`` missed its heartbeats: drop it now (a remote process is never signalled)."""
        self._leave(link, f"{describe(link)} missed its heartbeats (node stopped, or the link is cut)")

    def send_failed(self, identity: bytes, error: zmq.ZMQError) -> None:
        """A send to ``identity`` failed: when its connection is gone (``EHOSTUNREACH`` on the tcp
        listener), drop its link, soon (not inside the send)."""
        if identity[:1] == REMOTE_MARK and error.errno == zmq.EHOSTUNREACH:
            asyncio.get_running_loop().call_soon(self._unreachable, identity)

    def _unreachable(self, identity: bytes) -> None:
        # libzmq refuses sends to a peer whose connection closed while its last messages still wait to be
        # read: read them first, so that a node's LEAVING just before its close makes this a goodbye
        self.receive_waiting()
        link = self._links.get(identity)
        if link is not None:
            self._leave(link, f"{describe(link)} lost its connection (node gone, or the link closed)")

    def leaving(self, link: WorkerLink, message: Leaving) -> None:
        """The node drains ``link``: route it no new call."""
        if not link.draining:
            logger.info("%s is leaving: %s", describe(link), message.reason, extra={"worker": link.worker_id})
            link.draining = True
            self._admission.remove(link)

    def gone(self, link: WorkerLink) -> None:
        """``link`` was dropped: an optional pool without a worker left has its entries unlisted."""
        pool = link.pool
        if (
            link.node is not None
            and pool in self._catalog.optional
            and not any(other.pool == pool for other in self._links.values())
        ):
            self._catalog.forget(pool)

    async def release(self, grace: float) -> bool:
        """Drain every remote worker, give their calls ``grace`` seconds, then STOP and drop them; True
        when no call was left running.

        Cancellation: the remote workers stay drained; nothing else is undone.
        """
        self._stopping = True
        links = self.links()
        for link in links:
            if not link.draining:
                link.draining = True
                self._admission.remove(link)
                self._send(link.identity, Drain())
        deadline = time.monotonic() + grace
        while any(link.in_flight for link in links) and time.monotonic() < deadline:
            await asyncio.sleep(RELEASE_POLL)
        clean = not any(link.in_flight for link in links)
        for link in links:
            self._send(link.identity, Stop("the supervisor is stopping"))
            if link.identity in self._links:
                self._drop(link, "the supervisor is stopping")
        return clean

    def _leave(self, link: WorkerLink, reason: str) -> None:
        if link.draining and not link.in_flight:  # its node drained it (LEAVING): a goodbye, not a loss
            logger.info("%s left", describe(link), extra={"worker": link.worker_id})
        else:
            logger.error("%s", reason, extra={"worker": link.worker_id})
        self._drop(link, reason)
        self._send(link.identity, Stop(f"rejoin: {reason}"))


def describe(link: WorkerLink) -> str:
    """``node-a:trio-0 (pid 4242 on node-a)``."""
    return f"{link.worker_id} (pid {link.pid} on {link.node})"
