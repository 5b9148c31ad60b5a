"""A ZeroMQ socket on the asyncio loop, without ``zmq.asyncio``'s future per send and per receive.

Used by the asyncio worker (a DEALER) and by the supervisor's router (the ROUTER). The socket is
non-blocking and watched through its ``ZMQ_FD`` with ``loop.add_reader``. That descriptor is
edge-triggered and only says "``ZMQ_EVENTS`` may have changed", so every wake-up drains the socket with
``NOBLOCK`` until ``EAGAIN``, and ``send`` re-checks ``ZMQ_EVENTS`` afterwards because a send can consume
the edge that announced an incoming message (the same rules as ``trio_worker.zmq_io``).

Frames are handed to ``on_frames`` synchronously from the loop's reader callback, in arrival order; sends
never block: what the socket cannot take now (high-water mark) waits in an outbox, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import zmq

logger = logging.getLogger("mcp_supervisor.zmq")

_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
"""pyzmq's constants are enum members: ``events & zmq.POLLIN`` or ``zmq.SNDMORE | flags`` builds a new
enum value each time (about 0.7 µs); plain ints do not."""

BATCH = 512
"""Frames handled per wake-up before yielding to the loop's other callbacks."""


class AsyncioZmqSocket:
    """Owns one non-blocking zmq socket for the loop it is started on (not thread-safe)."""

    def __init__(
        self,
        socket: zmq.Socket[bytes],
        on_frames: Callable[[list[bytes]], None],
        *,
        multipart: bool = True,
    ) -> None:
        """``multipart=False`` is for a peer that only ever sends one-frame messages (a worker's DEALER
        talking to the router): each receive is then one ``recv``, without asking ``RCVMORE``."""
        self._socket = socket
        self._on_frames = on_frames
        self._multipart = multipart
        self._draining = False
        self._fd: int = socket.getsockopt(zmq.FD)  # type: ignore[assignment]
        self._outbox: deque[list[bytes]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_scheduled = False
        self._closed = False

    def start(self) -> None:
        """Start receiving on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._drain)
        self._schedule_drain()

    def send(self, frames: list[bytes]) -> None:
        """Queue one message (its frames); sent now when the socket can take it, else in order later.

        Raises:
            zmq.ZMQError: the socket refused the message (for a ROUTER with ``ROUTER_MANDATORY``, a peer
                that is gone: EHOSTUNREACH).
        """
        if self._closed:
            return
        if not self._outbox:
            try:
                self._send_now(frames)
            except zmq.Again:
                self._outbox.append(frames)
        else:
            self._outbox.append(frames)
        if self._draining:
            return  # sent from a frame handler: ``_drain`` checks ``ZMQ_EVENTS`` again before it returns
        if self._outbox or self._events() & _POLLIN:
            self._schedule_drain()

    def close(self, linger: int = 0) -> None:
        """Stop receiving and close the socket, giving unsent messages ``linger`` ms; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._socket.close(linger=linger)

    def _send_now(self, frames: list[bytes]) -> None:
        """``send_multipart`` without its per-call type checks and enum arithmetic (a message's later
        parts cannot hit the high-water mark once its first part was accepted)."""
        socket = self._socket
        for part in frames[:-1]:
            socket.send(part, _MORE_NOBLOCK, copy=False)
        socket.send(frames[-1], _NOBLOCK, copy=False)

    def _events(self) -> int:
        events: int = self._socket.getsockopt(_EVENTS)  # type: ignore[assignment]
        return events

    def _schedule_drain(self) -> None:
        if not self._drain_scheduled and self._loop is not None and not self._closed:
            self._drain_scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        if self._closed:
            return
        socket = self._socket
        while self._outbox:
            try:
                self._send_now(self._outbox[0])
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                logger.debug("dropping a queued message: %s", exc)
            self._outbox.popleft()
        # Receive while ZMQ_EVENTS says a message is waiting, rather than until recv raises EAGAIN: one
        # getsockopt per message instead of a recv that fails with an exception, and the last check is
        # also the one that must follow the handlers' sends (a send can consume the fd's edge).
        self._draining = True
        try:
            for _ in range(BATCH):
                if not self._events() & _POLLIN:
                    break
                try:
                    frames = socket.recv_multipart(_NOBLOCK) if self._multipart else [socket.recv(_NOBLOCK)]
                except zmq.Again:  # pragma: no cover - POLLIN said a message was there
                    break
                try:
                    self._on_frames(frames)
                except Exception:  # one bad message must not stop the socket
                    logger.exception("a received message could not be handled")
                if self._closed:
                    return
            else:
                self._schedule_drain()  # more may be waiting: come back after the loop's other work
                return
        finally:
            self._draining = False
        if self._outbox and self._events() & _POLLOUT:
            self._schedule_drain()
