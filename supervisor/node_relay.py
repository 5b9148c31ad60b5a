"""One worker of a node, relayed to the front: its CurveZMQ connection, made and made again, and its
frames both ways (docs/scaling.md).

The worker itself speaks to its node's router over ipc, exactly as to a supervisor's; the node opens, for
each worker it routes, a DEALER to the front's ``worker_listen`` named ``<node>:<slot>/<pid>/<n>`` and
sends the worker's READY there with its id made ``<node>:<slot>``. Guarantees:

- *Joining*: the relay is *joined* once the front's first frame that is not STOP arrives (its heartbeats
  start as soon as it accepted the READY). Until then nothing but the READY goes up, and a READY without
  an answer for ``ORPHAN_MISSES`` heartbeat intervals (a front down, or one that lost it) is sent again
  on a new connection after the backoff: a front that comes back finds one READY, not a backlog.
- *Only the current connection's calls*: a RESULT, ERROR, PROGRESS, LOG or REQUEST goes up only for a call
  the front sent on this connection and did not cancel. So an answer computed for a front that has since
  restarted (and counts its call ids from 1 again) can never answer one of its new calls.
- *Losing the front*: STOP from the front, a handshake that fails, or the front's silence for
  ``ORPHAN_MISSES`` heartbeat intervals ends the connection: the worker is told to CANCEL every call the
  connection gave it (the front has answered them already, or is gone), and a new connection joins after
  a backoff (``JOIN_BACKOFF_*``; at least ``REFUSED_BACKOFF`` after a refusal, which the node logs).
- *Leaving*: ``leave`` sends LEAVING (the front routes no new call; those in flight finish) and never
  joins again; ``close`` ends the connection, giving frames still queued ``CLOSE_LINGER_MS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from shared.errors import ProtocolError
from shared.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    Leaving,
    MessageType,
    Ready,
    Stop,
    decode,
    encode,
    peek,
)
from shared.zmqio.asyncio_socket import AsyncioZmqSocket

from .links import WorkerLink
from .worker_listener import TRANSPORT_HEARTBEAT_IVL_MS, TRANSPORT_HEARTBEAT_TIMEOUT_MS

logger = logging.getLogger("mcp_supervisor.node")

JOIN_BACKOFF_INITIAL = 0.5
JOIN_BACKOFF_MAX = 30.0
"""Seconds before a new connection after one was lost: doubling from the first to the second, back to
the first once a connection joined."""
REFUSED_BACKOFF = 5.0
"""A refused join (key not allowed, other entries than the pool's) waits at least this long."""
CLOSE_LINGER_MS = 1000
"""How long a closing connection keeps trying to deliver the worker's last answers."""
RECONNECT_IVL_MAX_MS = 2000
"""ZeroMQ's reconnect attempts to a front that does not answer back off up to this."""

_CALL_SCOPED = frozenset({MessageType.RESULT, MessageType.ERROR, MessageType.PROGRESS, MessageType.LOG})
_HANDSHAKE_FAILED = {
    int(zmq.EVENT_HANDSHAKE_FAILED_AUTH): "the front refused this node's key: put its {node}.key in the "
    "front's worker_allowed_keys",
    int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL): "the CURVE handshake with the front failed: is "
    "node_server_key the front's public key?",
    int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL): "the front spoke another ZeroMQ protocol during the handshake",
}

HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)
"""What the relay watches on its connection: ZeroMQ does not try again after a refused key."""


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """Where the front is and the keys to reach it: its public key, this node's key pair (Z85)."""

    endpoint: str
    node: str
    server_key: bytes
    public_key: bytes
    secret_key: bytes
    max_message_size: int


class Relay:
    """The relay of the worker ``link`` (a link of the node's router) to the front.

    ``to_worker(link, frame)`` queues a frame to the worker and never raises; ``report(problem)`` logs a
    problem of the node's connection to the front (the node says it once, not once per worker).
    """

    def __init__(
        self,
        link: WorkerLink,
        options: UpstreamOptions,
        context: zmq.Context[zmq.Socket[bytes]],
        to_worker: Callable[[WorkerLink, bytes], None],
        report: Callable[[str], None],
    ) -> None:
        self.link = link
        self.state = "idle"
        """``idle`` (no connection), ``joining``, ``joined``, ``leaving`` or ``closed``."""
        self.last_heard = time.monotonic()
        """``time.monotonic()`` of the front's last frame on the current connection."""
        self._options = options
        self._context = context
        self._to_worker = to_worker
        self._report = report
        self._generation = 0
        self._delay = JOIN_BACKOFF_INITIAL
        self._socket: AsyncioZmqSocket | None = None
        self._monitor: AsyncioZmqSocket | None = None
        self._raw: zmq.Socket[bytes] | None = None
        self._retry: asyncio.TimerHandle | None = None

    @property
    def front_id(self) -> str:
        """The worker's id at the front: ``<node>:<slot>``."""
        return f"{self._options.node}:{self.link.worker_id}"

    def join(self) -> None:
        """Open a connection to the front and send the worker's READY on it; a no-op unless idle."""
        if self.state != "idle":
            return
        self._retry = None
        self._generation += 1
        options = self._options
        socket = self._context.socket(zmq.DEALER)
        identity = f"{self.front_id}/{self.link.pid}/{self._generation}".encode()
        for option, value in (
            (zmq.IDENTITY, identity),
            (zmq.LINGER, CLOSE_LINGER_MS),
            (zmq.MAXMSGSIZE, options.max_message_size),
            (zmq.SNDHWM, 100_000),
            (zmq.RCVHWM, 100_000),
            (zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS),
            (zmq.HEARTBEAT_IVL, TRANSPORT_HEARTBEAT_IVL_MS),
            (zmq.HEARTBEAT_TIMEOUT, TRANSPORT_HEARTBEAT_TIMEOUT_MS),
            (zmq.CURVE_SERVERKEY, options.server_key),
            (zmq.CURVE_PUBLICKEY, options.public_key),
            (zmq.CURVE_SECRETKEY, options.secret_key),
        ):
            socket.setsockopt(option, value)
        monitor = socket.get_monitor_socket(HANDSHAKE_EVENTS)
        socket.connect(options.endpoint)
        self._raw = socket
        generation = self._generation
        self._monitor = AsyncioZmqSocket(monitor, lambda frames: self._on_event(generation, frames))
        self._socket = AsyncioZmqSocket(socket, lambda frames: self._from_front(frames[-1]), multipart=False)
        self._monitor.start()
        self._socket.start()
        link = self.link
        ready = Ready(
            self.front_id,
            link.pid,
            link.pool,
            PROTOCOL_VERSION,
            link.catalog,
            link.load_errors,
            link.elsewhere,
        )
        self._socket.send([encode(ready)])
        self.state = "joining"
        self.last_heard = time.monotonic()

    def from_worker(self, code: int, first: int | None, frame: bytes) -> None:
        """Carry a frame of the worker up, if the connection is joined and the frame belongs to it."""
        if self.state not in ("joined", "leaving") or self._socket is None:
            return
        if code in _CALL_SCOPED or (code == MessageType.REQUEST and first != 0):
            if first not in self.link.in_flight:
                return  # a call of an earlier connection, or one the front cancelled
            if code in (MessageType.RESULT, MessageType.ERROR):
                self.link.in_flight.discard(first)
        self._socket.send([frame])

    def leave(self, reason: str) -> None:
        """Tell the front to route the worker no new call; never join again. Also while joining: the front
        may have accepted the READY before its first frame here (a front that has not answers STOP)."""
        if self.state in ("joining", "joined") and self._socket is not None:
            self._socket.send([encode(Leaving(reason))])
        if self.state != "closed":
            self.state = "leaving"
        self._cancel_retry()

    def check(self, now: float, window: float) -> None:
        """End a joined connection whose front has been silent longer than ``window`` seconds, and one
        whose READY got no answer that long (the front is down, or lost it): a new connection joins."""
        if self.state == "joined" and now - self.last_heard > window:
            self._lost(f"the front has been silent for {now - self.last_heard:.1f} s", refused=False)
        elif self.state == "joining" and now - self.last_heard > window:
            self._report("the front does not answer (down, or unreachable)")
            self._lost("no answer to its READY", refused=False, quiet=True)

    def close(self) -> None:
        """End the connection (its last frames get ``CLOSE_LINGER_MS``) and never join again; idempotent."""
        self.state = "closed"
        self._cancel_retry()
        self._close_socket(CLOSE_LINGER_MS)

    # -- internals ---------------------------------------------------------------------------------

    def _from_front(self, frame: bytes) -> None:
        try:
            code, first = peek(frame)
        except ProtocolError as exc:
            logger.error("dropping a frame from the front for %s: %s", self.front_id, exc)
            return
        self.last_heard = time.monotonic()
        if code == MessageType.STOP:
            reason = _reason(frame)
            self._lost(f"the front sent STOP: {reason}", refused=reason.startswith("refused"))
            return
        if self.state == "joining":
            self.state = "joined"
            self._delay = JOIN_BACKOFF_INITIAL
            logger.info(
                "%s joined the front at %s as %s", self.link.worker_id, self._options.endpoint, self.front_id,
                extra={"worker": self.link.worker_id},
            )  # fmt: skip
        if code in (MessageType.HEARTBEAT, MessageType.DRAIN):
            return  # the node's router heartbeats its workers; a front's drain asks nothing of the worker
        if code == MessageType.CALL and first is not None:
            self.link.in_flight.add(first)
        elif code == MessageType.CANCEL:
            self.link.in_flight.discard(first or 0)
        self._to_worker(self.link, frame)

    def _on_event(self, generation: int, frames: list[Any]) -> None:
        if generation != self._generation or self.state not in ("joining", "joined"):
            return
        event = int(parse_monitor_message(frames)["event"])
        problem = _HANDSHAKE_FAILED.get(event)
        if problem is not None:
            self._report(problem.format(node=self._options.node))
            self._lost("the handshake with the front failed", refused=True)

    def _lost(self, reason: str, *, refused: bool, quiet: bool = False) -> None:
        """End the connection: cancel its calls at the worker, and join again after the backoff (logged
        unless ``quiet``: the node reports a front that does not answer once for all its workers)."""
        leaving = self.state == "leaving"
        for call_id in sorted(self.link.in_flight):
            self._to_worker(self.link, encode(Cancel(call_id, f"the front is lost: {reason}")))
        self.link.in_flight.clear()
        self._close_socket(0)
        if self.state == "closed":
            return
        delay = max(self._delay, REFUSED_BACKOFF) if refused else self._delay
        self._delay = min(delay * 2, JOIN_BACKOFF_MAX)
        log = logger.error if refused else logger.debug if quiet else logger.warning
        if leaving:
            self.state = "closed"
            log("%s: %s", self.front_id, reason, extra={"worker": self.link.worker_id})
            return
        self.state = "idle"
        log(
            "%s: %s; joining again in %.1f s", self.front_id, reason, delay,
            extra={"worker": self.link.worker_id},
        )  # fmt: skip
        self._retry = asyncio.get_running_loop().call_later(delay, self.join)

    def _close_socket(self, linger: int) -> None:
        if self._raw is not None:
            self._raw.disable_monitor()
            self._raw = None
        if self._monitor is not None:
            self._monitor.close(0)
            self._monitor = None
        if self._socket is not None:
            self._socket.close(linger)
            self._socket = None

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None


def _reason(frame: bytes) -> str:
    try:
        message = decode(frame)
    except ProtocolError:
        return "(undecodable)"
    return message.reason if isinstance(message, Stop) else ""
