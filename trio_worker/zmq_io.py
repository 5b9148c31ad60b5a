"""A ZeroMQ socket on the Trio loop.

pyzmq has no Trio backend, so this adapter drives a non-blocking socket through its ``ZMQ_FD``. That
descriptor is edge-triggered and only says "``ZMQ_EVENTS`` may have changed": after every wake-up the
pump drains the socket with ``NOBLOCK`` until ``EAGAIN``, and because a ``send`` can consume the edge that
announced an incoming message, ``send`` re-checks ``ZMQ_EVENTS`` and wakes the pump when input is waiting.

One task (``pump``) moves frames; any task may ``send``. Sends never block: a frame that cannot go out now
(high-water mark reached) waits in an outbox that the pump flushes first, so frames keep their order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio
import zmq

_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
"""pyzmq's constants are enum members: ``events & _POLLIN`` builds a new enum value each time (about
0.7 µs); plain ints do not."""


class TrioZmqSocket:
    """Owns one non-blocking zmq socket for the Trio loop it is used in (not thread-safe)."""

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self._socket = socket
        self._fd: int = socket.getsockopt(zmq.FD)  # type: ignore[assignment]
        self._outbox: deque[bytes] = deque()
        self._wait_scope: trio.CancelScope | None = None
        self._closed = False
        self._pumping = False
        """True while ``pump`` hands frames to ``on_frame``; it checks ``ZMQ_EVENTS`` again afterwards."""

    def send(self, frame: bytes) -> None:
        """Queue ``frame``; it is sent now when the socket can take it, else by the pump, in order.

        Raises:
            trio.ClosedResourceError: the socket was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("zmq socket is closed")
        if not self._outbox:
            try:
                self._socket.send(frame, _NOBLOCK, copy=False)
            except zmq.Again:
                self._outbox.append(frame)
        else:
            self._outbox.append(frame)
        if self._pumping:
            return  # sent from a frame handler: the pump checks ZMQ_EVENTS again before it waits
        if self._outbox or self._events() & _POLLIN:
            self._wake()

    async def pump(self, on_frame: Callable[[bytes], None]) -> None:
        """Receive frames and hand each to ``on_frame`` (synchronously) until ``close``.

        Cancellation: returns promptly when cancelled; frames not yet received stay in the socket.
        """
        socket = self._socket
        while not self._closed:
            self._flush()
            # Receive while ZMQ_EVENTS says a message is waiting rather than until recv raises EAGAIN: one
            # getsockopt per frame instead of a failing recv and its exception; the last check also
            # follows the handlers' sends (a send can consume the fd's edge).
            self._pumping = True
            try:
                while (events := self._events()) & _POLLIN:
                    on_frame(socket.recv(_NOBLOCK, copy=True))
                    if self._closed:
                        return
            finally:
                self._pumping = False
            if self._outbox and events & _POLLOUT:
                await trio.lowlevel.checkpoint()
                continue
            with trio.CancelScope() as scope:
                self._wait_scope = scope
                await trio.lowlevel.wait_readable(self._fd)
            self._wait_scope = None

    def close(self) -> None:
        """Stop the pump and close the socket; idempotent. Unsent frames get the socket's linger time."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        self._flush()
        self._socket.close()

    def _events(self) -> int:
        events: int = self._socket.getsockopt(_EVENTS)  # type: ignore[assignment]
        return events

    def _flush(self) -> None:
        while self._outbox:
            try:
                self._socket.send(self._outbox[0], _NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._outbox.popleft()

    def _wake(self) -> None:
        if self._wait_scope is not None:
            self._wait_scope.cancel()
