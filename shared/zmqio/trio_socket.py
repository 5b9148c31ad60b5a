"""``TrioZmqSocket``: a ``ZmqSocketCore`` on the Trio loop (pyzmq has no Trio backend).

One task runs ``pump``, which waits for the socket's ``ZMQ_FD`` with ``trio.lowlevel.wait_readable``
inside a cancel scope; waking the pump is cancelling that scope.
"""

from __future__ import annotations

import trio
import zmq

from .core import MessageHandler, Receiver, ZmqSocketCore


class TrioZmqSocket(ZmqSocketCore):
    """Owns one non-blocking zmq socket for the Trio loop it is used in (not thread-safe)."""

    def __init__(
        self, socket: zmq.Socket[bytes], *, multipart: bool = True, receive: Receiver | None = None
    ) -> None:
        super().__init__(socket, multipart=multipart, receive=receive)
        self._wait_scope: trio.CancelScope | None = None

    async def pump(self, on_message: MessageHandler) -> None:
        """Receive messages and hand each to ``on_message`` (synchronously) until ``close``; flush the
        outbox meanwhile. Returns at once when the socket is already closed.

        Cancellation: raises ``trio.Cancelled`` promptly when cancelled; messages not yet received stay in
        the socket, and the socket stays open.
        """
        while True:
            again = self.drain(on_message)
            if self._closed:
                return
            if again:
                await trio.lowlevel.checkpoint()
                continue
            try:
                with trio.CancelScope() as scope:
                    self._wait_scope = scope
                    await trio.lowlevel.wait_readable(self._fd)
            finally:
                self._wait_scope = None

    def _wake(self) -> None:
        if self._wait_scope is not None:
            self._wait_scope.cancel()
