"""``TrioZmqSocket``: a ``ZmqSocketCore`` on the Trio loop (pyzmq has no Trio backend).

One task runs ``pump``, which waits for the socket's ``ZMQ_FD`` with ``trio.lowlevel.wait_readable``.
Waking the pump is ``trio.lowlevel.notify_closing`` on that descriptor: the wait ends with
``ClosedResourceError`` and the pump drains (or, after ``close``, returns). A wake is rare (a send that found
a message waiting, or the outbox), while a cancel scope around every wait, the way to wake it before, cost
more than the rest of a message's handling (measured with callgrind: docs/performance-changes.md).

Between two waits the pump always drains first, so a send made while it is not waiting leaves
``ZMQ_EVENTS`` to that drain (``ZmqSocketCore._waiting``).
"""

from __future__ import annotations

from collections.abc import Callable

import trio
import zmq

from .core import MessageHandler, Receiver, ZmqSocketCore


class TrioZmqSocket(ZmqSocketCore):
    """Owns one non-blocking zmq socket for the Trio loop it is used in (not thread-safe)."""

    def __init__(
        self, socket: zmq.Socket[bytes], *, multipart: bool = True, receive: Receiver | None = None
    ) -> None:
        super().__init__(socket, multipart=multipart, receive=receive)
        self._waiting = False  # True only while the pump is in wait_readable

    async def pump(self, on_message: MessageHandler, until: Callable[[], bool] | None = None) -> None:
        """Receive messages and hand each to ``on_message`` (synchronously) until ``close``; flush the
        outbox meanwhile. Returns at once when the socket is already closed.

        With ``until``, also returns after a round of messages when ``until()`` is true; the socket is then
        read by nobody until ``pump`` is called again (from this task or another), which carries on.

        Cancellation: raises ``trio.Cancelled`` promptly when cancelled; messages not yet received stay in
        the socket, and the socket stays open.
        """
        fd = self._fd
        while True:
            again = self.drain(on_message)
            if self._closed or (until is not None and until()):
                return
            if again:
                await trio.lowlevel.checkpoint()
                continue
            self._waiting = True
            try:
                await trio.lowlevel.wait_readable(fd)
            except trio.ClosedResourceError:
                pass  # _wake: drain now (or return, closed)
            finally:
                self._waiting = False

    def _wake(self) -> None:
        # notify_closing ends the wait and takes the descriptor out of Trio's epoll set; the next wait puts
        # it back. The descriptor stays open (close() closes it right after, with no checkpoint between).
        if self._waiting:
            self._waiting = False
            trio.lowlevel.notify_closing(self._fd)
