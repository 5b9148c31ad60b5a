"""``AsyncioZmqSocket``: a ``ZmqSocketCore`` on the asyncio loop, without ``zmq.asyncio``'s future per
send and per receive.

Used by the asyncio worker (a DEALER) and by the supervisor's router (the ROUTER). The socket's ``ZMQ_FD``
is watched with ``loop.add_reader``, whose callback drains at once; a wake-up is a ``call_soon`` of the same
drain, with at most one scheduled at a time.
"""

from __future__ import annotations

import asyncio

import zmq

from .core import MessageHandler, Receiver, ZmqSocketCore


class AsyncioZmqSocket(ZmqSocketCore):
    """Owns one non-blocking zmq socket for the loop it is started on (not thread-safe).

    Messages are handed to ``on_message`` from the loop's callbacks, once ``start`` was called.
    """

    def __init__(
        self,
        socket: zmq.Socket[bytes],
        on_message: MessageHandler,
        *,
        multipart: bool = True,
        receive: Receiver | None = None,
    ) -> None:
        super().__init__(socket, multipart=multipart, receive=receive)
        self._on_message = on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_scheduled = False

    def start(self) -> None:
        """Start receiving on the running loop; messages sent before go out now. A no-op once closed."""
        if self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._drain)
        self._wake()

    def close(self, linger: int | None = None) -> None:
        """Stop receiving and close the socket (see ``ZmqSocketCore.close``); idempotent."""
        if self._loop is not None and not self._closed:
            self._loop.remove_reader(self._fd)
        super().close(linger)

    def receive_waiting(self) -> None:
        """Hand the messages already waiting in the socket to the handler now, as the reader callback
        would (up to a round; the rest at the loop's next turn). A no-op before ``start`` or once closed."""
        if self._loop is not None:
            self._drain()

    def _wake(self) -> None:
        if not self._drain_scheduled and self._loop is not None and not self._closed:
            self._drain_scheduled = True
            self._loop.call_soon(self._scheduled_drain)

    def _scheduled_drain(self) -> None:
        self._drain_scheduled = False
        self._drain()

    def _drain(self) -> None:
        """The reader callback (it leaves a scheduled drain scheduled: at most one waits at a time)."""
        if self.drain(self._on_message):
            self._wake()  # more may be waiting: come back after the loop's other work
