"""What a ZeroMQ socket driven through its ``ZMQ_FD`` does whatever the loop: the rules in the package
docstring, written once.

``ZmqSocketCore`` holds the socket's state and does the sending, the outbox and one round of receiving
(``drain``). A loop's shim adds only the waiting: it watches the socket's fd (``_fd``), calls ``drain`` when
the fd fires or after its ``_wake`` was called, and lets its loop's other work run before calling ``drain``
again when ``drain`` asks for another round.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
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
"""Messages handled per wake-up before the loop's other work gets a turn."""

WORKER_LINGER_MS = 1000
"""How long a worker's closing DEALER keeps trying to deliver its last answers."""

MessageHandler = Callable[[list[bytes]], None]
"""Gets each received message (its frames), synchronously, in arrival order."""
Receiver = Callable[["zmq.Socket[bytes]"], list[bytes]]
"""Takes one waiting message off a socket without blocking, as the frames handed to the handler (a
socket whose messages carry properties to read, such as the ``User-Id`` of an authenticated peer)."""


class ZmqSocketCore(ABC):
    """Owns one non-blocking zmq socket for one loop (not thread-safe); a shim supplies ``_wake``.

    ``send`` and ``close`` are the public operations; the shim's pump calls ``drain``.
    """

    def __init__(
        self, socket: zmq.Socket[bytes], *, multipart: bool = True, receive: Receiver | None = None
    ) -> None:
        """``multipart=False`` is for a peer that only ever sends one-frame messages (a worker's DEALER
        talking to the router): each receive is then one ``recv``, without asking ``RCVMORE``.
        ``receive`` replaces the plain receive of one message."""
        self._socket = socket
        self._multipart = multipart
        self._receive = receive
        self._fd: int = socket.getsockopt(zmq.FD)  # type: ignore[assignment]
        self._outbox: deque[list[bytes]] = deque()
        self._closed = False
        self._handling = False
        """True while ``drain`` hands messages to the handler; it checks ``ZMQ_EVENTS`` again afterwards."""
        self._waiting = True
        """False while the shim's pump is sure to call ``drain`` before it waits for the fd again (Trio's pump
        between two waits); a send then leaves ``ZMQ_EVENTS`` to that ``drain`` instead of reading it."""

    @abstractmethod
    def _wake(self) -> None:
        """Make the pump call ``drain`` soon (or notice ``close``); called on the loop's thread."""

    def send(self, frames: list[bytes]) -> None:
        """Queue one message (its frames); sent now when the socket can take it, else in order later.

        Raises:
            zmq.ZMQError: the socket refused the message now, not for being full (for a ROUTER with
                ``ROUTER_MANDATORY``, a peer that is gone: EHOSTUNREACH). After ``close`` nothing is
                raised: the message is dropped.
        """
        if self._closed:
            logger.debug("dropping a message sent after close")
            return
        if not self._outbox:
            try:
                if len(frames) == 1:  # a worker's every message: one call less than _send_now (60 ns)
                    self._socket.send(frames[0], _NOBLOCK, copy=False)
                else:
                    self._send_now(frames)
            except zmq.Again:
                self._outbox.append(frames)
        else:
            self._outbox.append(frames)
        if self._handling or not self._waiting:
            return  # ``drain`` checks ``ZMQ_EVENTS`` again before the pump waits
        if self._outbox or self._events() & _POLLIN:
            self._wake()

    def close(self, linger: int | None = None) -> None:
        """Stop the pump, flush the outbox as far as the socket takes it (the rest is dropped) and close the
        socket, giving unsent messages ``linger`` ms (``None``: the socket's ``LINGER`` option); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake()  # before the socket (and its fd) closes: a waiting pump stops watching the fd
        self._flush()
        self._outbox.clear()  # what the socket did not take is dropped, as the package docstring says
        self._socket.close(linger=linger)

    def drain(self, on_message: MessageHandler) -> bool:
        """One round of the pump: flush the outbox, then hand up to ``BATCH`` messages to ``on_message``.

        Returns True when the pump should run again once the loop's other work had its turn (``BATCH``
        reached, or the outbox waits and the socket has room), False when it should wait for the fd, or
        has nothing more to do because the socket is closed. A handler exception is logged, not raised.
        """
        if self._closed:
            return False
        self._flush()
        socket = self._socket
        multipart = self._multipart
        receive = self._receive
        # Receive while ZMQ_EVENTS says a message is waiting, rather than until recv raises EAGAIN: one
        # getsockopt per message instead of a recv that fails with an exception, and the last check is
        # also the one that must follow the handler's sends (a send can consume the fd's edge).
        self._handling = True
        try:
            for _ in range(BATCH):
                events = self._events()
                if not events & _POLLIN:
                    break
                if receive is not None:
                    message = receive(socket)
                else:
                    message = socket.recv_multipart(_NOBLOCK) if multipart else [socket.recv(_NOBLOCK)]
                try:
                    on_message(message)
                except Exception:  # one bad message must not stop the socket
                    logger.exception("a received message could not be handled")
                if self._closed:
                    return False
            else:
                return True
        finally:
            self._handling = False
        # the last ZMQ_EVENTS read: asking again could consume the edge of a message that just arrived
        return bool(self._outbox) and bool(events & _POLLOUT)

    def _send_now(self, frames: list[bytes]) -> None:
        """``send_multipart`` without its per-call type checks and enum arithmetic (a message's later
        parts cannot hit the high-water mark once its first part was accepted)."""
        socket = self._socket
        for part in frames[:-1]:
            socket.send(part, _MORE_NOBLOCK, copy=False)
        socket.send(frames[-1], _NOBLOCK, copy=False)

    def _flush(self) -> None:
        outbox = self._outbox
        while outbox:
            try:
                self._send_now(outbox[0])
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                logger.debug("dropping a queued message: %s", exc)
            outbox.popleft()

    def _events(self) -> int:
        events: int = self._socket.getsockopt(_EVENTS)  # type: ignore[assignment]
        return events


def connect_dealer(
    context: zmq.Context[zmq.Socket[bytes]],
    endpoint: str,
    identity: bytes,
    max_message_size: int,
    *,
    wait: float | None = None,
) -> zmq.Socket[bytes]:
    """A worker's DEALER, connected to the router at ``endpoint``: routable as ``identity``, refusing
    messages over ``max_message_size`` bytes, lingering ``WORKER_LINGER_MS`` on close.

    ZeroMQ connects in the background; with ``wait``, this blocks until the connection is made (at most
    ``wait`` seconds), for a worker about to lose the right to open the endpoint (``worker_user``).

    Raises:
        ConnectionError: with ``wait``, no connection within it.
    """
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.IDENTITY, identity)
    socket.setsockopt(zmq.LINGER, WORKER_LINGER_MS)
    socket.setsockopt(zmq.MAXMSGSIZE, max_message_size)
    if wait is None:
        socket.connect(endpoint)
        return socket
    monitor = socket.get_monitor_socket(zmq.EVENT_CONNECTED)  # before connect: the event is not missed
    try:
        socket.connect(endpoint)
        connected = bool(monitor.poll(int(wait * 1000)))
        if connected:
            monitor.recv_multipart()
    finally:
        socket.disable_monitor()
        monitor.close(linger=0)
    if not connected:
        socket.close(linger=0)
        raise ConnectionError(f"no connection to {endpoint} within {wait:g} s")
    return socket
