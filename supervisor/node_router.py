"""A node's router: the ROUTER its own workers connect to, and the relay of each of them to the front.

A node (``python -m supervisor node``, docs/scaling.md) runs a supervisor's arbiter without the front or
the task queue. Its workers are ordinary workers: they connect over ipc, in the node's private runtime
directory, to this router, which does for the arbiter what a supervisor's router does (``WorkerRouter``):
it admits a READY only from the process the arbiter started, heartbeats the workers and reports one gone
silent (the arbiter kills it), holds spares until one is promoted, drains and stops. What it does not do
is route calls: each worker it promotes gets a ``node_relay.Relay`` to the front, and the front routes
calls to it as to one of its own. Guarantees:

- a worker that dies or is killed here has its relay closed at once: the front finds the connection gone
  at its next send (a heartbeat interval at most) and answers the worker's calls;
- draining a worker (the node's stop, reload, scale or memory recycling) sends LEAVING to the front and
  waits for the calls the front gave it (the relay keeps them in ``link.in_flight``), as a supervisor
  waits for its own;
- the front's silence, its STOP or a failed handshake only make the relay join again on a new connection:
  the worker keeps running (``node_relay``);
- the router never signals a process: the arbiter does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import zmq

from shared.errors import ProtocolError
from shared.protocol import (
    ORPHAN_MISSES,
    CatalogChanged,
    Drain,
    Message,
    MessageType,
    Ready,
    Stop,
    decode,
    encode,
    peek,
)

from .links import Links, Refused, WorkerLink
from .liveness import Liveness
from .node_relay import Relay, UpstreamOptions
from .router_types import FrameSocket, open_zmq_router

logger = logging.getLogger("mcp_supervisor.node")

REPORT_INTERVAL = 60.0
"""The node logs one problem of its connection to the front at most once in this many seconds."""


class NodeRouter:
    """The router of a node's workers at ``endpoint`` (ipc), relaying each promoted worker to the front
    ``upstream`` names.

    Callbacks (plain attributes, set by whoever composes the node): ``on_ready(link)`` when a worker's
    READY is accepted; ``on_unresponsive(link)`` when one misses its heartbeats.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        pools: list[str],
        upstream: UpstreamOptions,
        max_message_size: int,
        heartbeat_interval: float,
    ) -> None:
        self._endpoint = endpoint
        self.pools = list(pools)
        self.upstream = upstream
        self.max_message_size = max_message_size
        self.on_ready: Callable[[WorkerLink], None] = lambda link: None
        self.on_unresponsive: Callable[[WorkerLink], None] = lambda link: None
        self._table = Links(self.pools)
        self._links = self._table.by_identity
        self.recent_errors = self._table.errors  # the arbiter notes its workers' exits (the log shows them)
        self._relays: dict[bytes, Relay] = {}
        self._liveness = Liveness(self._links, heartbeat_interval, self._send, self._on_silent)
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: FrameSocket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reported: dict[str, float] = {}

    @property
    def endpoint(self) -> str:
        return self._endpoint

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the workers' socket and start heartbeats and the watch of the front; returns at once."""
        self._context = zmq.Context()
        self._socket = open_zmq_router(self._context, self._endpoint, self.max_message_size, self._on_frames)
        self._tasks = [
            asyncio.create_task(self._liveness.serve()),
            asyncio.create_task(self._watch_front()),
        ]

    async def aclose(self) -> None:
        """Close every relay and the socket; idempotent."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for relay in self._relays.values():
            relay.close()
        self._relays.clear()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def relays(self) -> list[Relay]:
        """The relays of the routed workers."""
        return list(self._relays.values())

    # -- arbiter interface (``WorkerRouter``) --------------------------------------------------------

    def expect(self, worker_id: str, pid: int, *, held: bool = False) -> None:
        """Accept a READY from ``worker_id`` only from ``pid``; a *held* one is not relayed until promoted."""
        self._table.expect(worker_id, pid, held=held)

    def promote(self, pid: int) -> None:
        """Relay a held worker to the front; a no-op for one that is not held."""
        link = self._table.unhold(pid)
        if link is not None:
            self._relay(link)

    def worker_gone(self, pid: int, reason: str, *, death: bool = False) -> bool:
        """Process ``pid`` exited: forget it and close its relay (the front answers its calls, and keeps
        the quarantine's count: ``death`` is not used here). True when it held calls."""
        link = self._table.forget(pid)
        if link is None:
            return False
        self._links.pop(link.identity, None)
        relay = self._relays.pop(link.identity, None)
        if relay is not None:
            relay.close()
            logger.info("%s left the front: %s", link.worker_id, reason, extra={"worker": link.worker_id})
        return bool(link.in_flight)

    def set_pool_failed(self, pool: str, reason: str | None) -> None:
        """Only logged: the front's pool has other workers, or waits for this node's."""
        if reason is not None:
            logger.error("every %s worker of this node is failing: %s", pool, reason)

    def drain(self, pid: int) -> None:
        """Tell the worker (DRAIN) and the front (LEAVING) that ``pid`` takes no new call."""
        link = self.link_of(pid)
        if link is None or link.draining:
            return
        link.draining = True
        self._send(link, Drain())
        relay = self._relays.get(link.identity)
        if relay is not None:
            relay.leave("its node is draining it (stop, reload, scale or memory)")

    def stop(self, pid: int, reason: str) -> None:
        """Send STOP to the worker ``pid``; a no-op when it is not connected."""
        link = self.link_of(pid)
        if link is not None:
            self._send(link, Stop(reason))

    def links(self) -> list[WorkerLink]:
        return list(self._links.values())

    def link_of(self, pid: int) -> WorkerLink | None:
        return self._table.of(pid)

    # -- frames ------------------------------------------------------------------------------------

    def _on_frames(self, frames: list[bytes]) -> None:
        """One message of a worker: READY admits it, anything else goes up its relay."""
        if len(frames) != 2:
            return
        identity, frame = frames
        try:
            code, first = peek(frame)
        except ProtocolError as exc:
            logger.error("dropping a frame from %s: %s", identity.decode(errors="replace"), exc)
            return
        link = self._links.get(identity)
        if link is None:
            if code == MessageType.READY:
                self._on_ready(identity, frame)
            return
        link.last_heard = time.monotonic()
        if code == MessageType.CATALOG_CHANGED:
            message = _decoded(frame)
            if isinstance(message, CatalogChanged):
                self._table.recatalog(link, message)  # what the next READY to the front announces
        relay = self._relays.get(identity)
        if relay is not None:
            relay.from_worker(code, first, frame)

    def _on_ready(self, identity: bytes, frame: bytes) -> None:
        message = _decoded(frame)
        if not isinstance(message, Ready):
            return
        try:
            link = self._table.accept(identity, message)
        except Refused as exc:
            self._send_raw(identity, encode(Stop(f"refused: {exc}")))
            return
        self.on_ready(link)
        if not link.held:
            self._relay(link)

    def _relay(self, link: WorkerLink) -> None:
        if self._context is None or link.identity in self._relays:
            return
        relay = Relay(link, self.upstream, self._context, self._to_worker, self._report)
        self._relays[link.identity] = relay
        relay.join()

    def _to_worker(self, link: WorkerLink, frame: bytes) -> None:
        self._send_raw(link.identity, frame)

    def _send(self, link: WorkerLink, message: Message) -> None:
        self._send_raw(link.identity, encode(message))

    def _send_raw(self, identity: bytes, frame: bytes) -> None:
        if self._socket is None:
            return
        try:
            self._socket.send([identity, frame])
        except zmq.ZMQError as exc:
            logger.debug("cannot send to %s: %s", identity.decode(errors="replace"), exc)

    def _on_silent(self, link: WorkerLink) -> None:
        self.drain(link.pid)
        self.on_unresponsive(link)

    def _report(self, problem: str) -> None:
        now = time.monotonic()
        if now - self._reported.get(problem, -REPORT_INTERVAL) >= REPORT_INTERVAL:
            self._reported[problem] = now
            logger.error("%s (front %s)", problem, self.upstream.endpoint)

    async def _watch_front(self) -> None:
        """Every heartbeat interval, end the connections whose front went silent (``Relay.check``); a
        watch that itself ran late (this node was stalled) gives the front the benefit of the doubt."""
        interval = self._liveness.interval
        last = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            late, last = now - last > interval * 2, now
            for relay in list(self._relays.values()):
                if late:
                    relay.last_heard = max(relay.last_heard, now - interval)
                else:
                    relay.check(now, interval * ORPHAN_MISSES)


def _decoded(frame: bytes) -> Message | None:
    try:
        return decode(frame)
    except ProtocolError as exc:
        logger.error("dropping a frame: %s", exc)
        return None
