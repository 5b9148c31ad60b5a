"""A ZeroMQ socket driven by an event loop through its ``ZMQ_FD``, for asyncio and for Trio.

pyzmq's own asyncio integration costs a future per send and per receive, and it has no Trio backend. This
package drives a non-blocking socket through ``ZMQ_FD`` instead. That descriptor is edge-triggered and only
says "``ZMQ_EVENTS`` may have changed", so the pump receives while ``ZMQ_EVENTS`` says a message waits, and
``send`` re-checks ``ZMQ_EVENTS`` because a send can consume the edge that announced an incoming message
(unless the pump is sure to drain before it waits again: it is handling messages, or, on Trio, not waiting).

Modules (import the one your loop needs; this package imports neither, so the supervisor never loads Trio
and a Trio worker never loads asyncio machinery):

- ``core``: ``ZmqSocketCore``, everything that does not depend on the loop; ``connect_dealer``.
- ``asyncio_socket``: ``AsyncioZmqSocket`` (``loop.add_reader``; ``start()``, handler given to ``__init__``).
- ``trio_socket``: ``TrioZmqSocket`` (``trio.lowlevel.wait_readable``; ``await pump(handler)``, which may also
  return between rounds for another task to carry on: ``until``).

The contract, the same for both:

- **A message is a list of frames**, sent and received whole (a ROUTER's is ``[identity, frame]``). A socket
  made with ``multipart=False`` receives each message with one ``recv``, as ``[frame]``: for a peer that
  never sends more than one frame (a worker's DEALER talking to the router).
- **Receiving**: one handler gets every message synchronously from the pump, in arrival order, at most
  ``BATCH`` per wake-up before the loop's other work gets a turn. A handler that raises is logged
  (``mcp_supervisor.zmq``) and the next message is handled as usual: one bad message never stops the socket.
- **Sending never blocks** and may be called from the handler or any task on the loop's thread (never from
  another thread). A message the socket cannot take now (high-water mark) waits in an outbox that the pump
  flushes before it receives; once one message waits, later ones queue behind it, so order is kept.
- **Send errors**: ``send`` raises ``zmq.ZMQError`` only when the socket refuses the message at once for a
  reason other than being full: for a ROUTER with ``ROUTER_MANDATORY``, a peer that is gone
  (``EHOSTUNREACH``). A message refused later, from the outbox, is logged at debug level and dropped; the
  pump carries on.
- **Send after close** drops the message (debug log) and does not raise: the socket that would have carried
  it is gone, exactly as for a message still queued when the linger time ran out. Callers treat ``send`` as
  "never raises except for a gone peer", and a send can legitimately come late (a sync tool's thread hands
  its last PROGRESS to the loop while the worker stops).
- **Closing** is idempotent: the pump stops (Trio's ``pump`` returns, asyncio's reader is removed), the outbox
  is flushed as far as the socket takes it and the rest dropped, and the socket closes with ``linger`` ms for
  unsent messages (``None``: the socket's ``LINGER`` option). Messages not yet received stay unhandled.
- Neither class is thread-safe: a socket belongs to the loop it is used in.
"""

__all__: list[str] = []
"""Nothing: import ``core``, ``asyncio_socket`` or ``trio_socket`` directly."""
