"""What every worker does with the router's frames, whatever its event loop.

``WorkerCore`` decodes each frame from the router and acts on it, keeps the table of running calls, sends
the worker's own requests to the router (held until READY is out) and its heartbeats. It runs nothing
itself: the event loop is given to it as a ``Loop``, the few primitives the asyncio and Trio workers each
implement. A call goes down in a straight line and never back up: the socket hands the frame to
``WorkerCore.handle``, which has ``ToolHost.prepare`` look the tool up and ``Loop.start_call`` run it.

Threads: everything runs on the event loop's thread, but ``emit`` (any thread: a sync tool's progress) and
``Loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from ..errors import INPUT_PENDING, CallError, ClientRequestError, InputRequired, ProtocolError
from ..launch import EXIT_OK, EXIT_ORPHANED, EXIT_PROTOCOL, WorkerOptions
from ..protocol import (
    ORPHAN_MISSES,
    Call,
    Cancel,
    Drain,
    Heartbeat,
    Log,
    Message,
    Reply,
    Request,
    RequestCancel,
    RequestProgress,
    Stop,
    decode,
    encode,
    too_large,
)
from .host import PreparedCall, ToolHost
from .threads import ThreadLoad

logger = logging.getLogger("mcp_supervisor.worker")

ProgressCallback = Callable[[float, float | None, str | None], None]
"""Receives ``(progress, total, message)`` of a request's tool call (REQUEST_PROGRESS)."""


class Cancellable(Protocol):
    """The handle of a running call: an asyncio ``Task`` or a Trio ``CancelScope``."""

    def cancel(self) -> object:
        """Cancel the call; idempotent, and a no-op on a call that already finished."""


CallHandle = TypeVar("CallHandle", bound=Cancellable)


class Waiter(Protocol):
    """A one-shot rendezvous on one event loop: ``set`` once, ``wait`` returns the value."""

    def set(self, value: Reply) -> None: ...

    async def wait(self) -> Reply: ...


class Loop(Protocol):
    """What the core needs from the worker's event loop (``AsyncioWorker``, ``TrioWorker``)."""

    def send(self, frame: bytes) -> None:
        """Queue a frame to the router; called from the event loop thread only; never blocks."""

    def start_call(self, call: PreparedCall) -> None:
        """Start running a prepared call in the background and record its handle in
        ``WorkerCore.running`` until it ends (a call that ended before this returns need not be)."""

    def new_waiter(self) -> Waiter:
        """A one-shot waiter on this loop."""

    def request_exit(self, code: int) -> None:
        """Make the worker's ``serve`` return ``code`` soon, cancelling the calls still running."""

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread soon; callable from any thread once the loop runs."""


class WorkerCore(Generic[CallHandle]):
    """Frame dispatch and bookkeeping of one worker process, over the ``Loop`` it is given; the loop's
    handle of a running call is a ``CallHandle``."""

    def __init__(self, options: WorkerOptions, host: ToolHost, loop: Loop) -> None:
        self.options = options
        self.host = host
        self._loop = loop
        self.send: Callable[[bytes], None] = loop.send
        """The loop's ``send``, bound once (the per-frame path calls it without a lookup)."""
        self._start_call = loop.start_call
        self.draining = False
        self.on_drain: list[Callable[[], None]] = []
        """Called once when the router sends DRAIN (a service stops starting new work: the task queue)."""
        self.last_heard = time.monotonic()
        self.running: dict[int, CallHandle] = {}
        """call id → the handle that cancels it; the loop adds and removes the entries."""
        self.cancelled: set[int] = set()
        """Calls that CANCEL reached while they ran and that have not unwound yet; the loop discards the
        id when the call ends (a Trio scope ends cancelled alike by CANCEL and by its deadline)."""
        self.announced = False
        self._announce_waiters: list[Waiter] = []
        self.request_progress: dict[int, ProgressCallback] = {}
        self.waiting: dict[int, Waiter] = {}
        """request id → the waiter of a request a tool made (``ctx.sample`` and friends)."""
        self._request_ids = itertools.count(1)
        self._loop_thread = threading.get_ident()
        self.threads = ThreadLoad(options.threads, self._threads_changed)
        """The sync tools' threads; the runtime passes it to ``ToolHost.run``."""

    def mark_loop_thread(self) -> None:
        """Record the calling thread as the event loop's (``serve`` calls this first)."""
        self._loop_thread = threading.get_ident()

    def send_threadsafe(self, frame: bytes) -> None:
        """Queue a frame from another thread (a sync tool); never blocks."""
        self._loop.call_soon_threadsafe(self.send, frame)

    def cancel_call(self, call_id: int) -> None:
        """Cancel a running call (recording it in ``cancelled``); a no-op for a call that already ended."""
        handle = self.running.get(call_id)
        if handle is not None:
            self.cancelled.add(call_id)
            handle.cancel()

    def in_flight(self) -> int:
        """How many calls are running."""
        return len(self.running)

    def _threads_changed(self) -> None:
        """Send THREADS from the loop thread, with the state it finds there: of two changes made in two
        threads, the later state always goes out last."""
        self._loop.call_soon_threadsafe(self._send_threads)

    def _send_threads(self) -> None:
        if self.announced:  # the router ignores a worker's frames before its READY
            self.send(encode(self.threads.snapshot()))

    def emit(self, message: Message) -> None:
        """Send a message from any thread (the ``ToolContext`` uses this). One over ``max_message_size``
        is not sent (the router's socket would drop it, and the connection with it): a LOG becomes a
        warning LOG saying so, anything else is logged here."""
        frame = encode(message)
        if len(frame) > self.options.max_message_size:
            reason = too_large(
                f"the {type(message).__name__.upper()} frame", len(frame), self.options.max_message_size
            )
            if not isinstance(message, Log):
                logger.error("not sent: %s", reason)
                return
            frame = encode(
                Log(message.call_id, "warning", message.logger, f"a log message was not sent: {reason}")
            )
        if threading.get_ident() == self._loop_thread:
            self.send(frame)
        else:
            self.send_threadsafe(frame)

    def ready_frame(self) -> bytes:
        """The READY frame; requests held until now go out right after it."""
        frame = encode(self.host.ready())
        self.announced = True
        for waiter in self._announce_waiters:
            waiter.set(Reply(0, None, None))
        self._announce_waiters.clear()
        return frame

    def handle(self, frame: bytes) -> None:
        """Dispatch one frame from the router; never raises."""
        self.last_heard = time.monotonic()
        try:
            message = decode(frame)
        except ProtocolError as exc:
            logger.error("dropping a frame from the router: %s", exc)
            return
        if isinstance(message, Call):
            self._on_call(message)
        elif isinstance(message, Reply):
            waiter = self.waiting.pop(message.request_id, None)
            if waiter is not None:
                waiter.set(message)
        elif isinstance(message, RequestProgress):
            callback = self.request_progress.get(message.request_id)
            if callback is not None:
                callback(message.progress, message.total, message.message)
        elif isinstance(message, Cancel):
            self.cancel_call(message.call_id)
        elif isinstance(message, Heartbeat):
            pass
        elif isinstance(message, Drain):
            if not self.draining:
                self.draining = True
                for drained in self.on_drain:
                    drained()
        elif isinstance(message, Stop):
            logger.info("stopping: %s", message.reason)
            self._loop.request_exit(EXIT_PROTOCOL if message.reason.startswith("refused") else EXIT_OK)
        else:
            logger.warning("ignoring unexpected %s frame from the router", type(message).__name__)

    def _on_call(self, call: Call) -> None:
        try:
            prepared = self.host.prepare(call, self.emit, self.request)
        except CallError as exc:
            self.send(self.host.error_frame(call.call_id, exc))
            return
        self._start_call(prepared)

    async def serve_heartbeats(self, sleep: Callable[[float], Awaitable[object]]) -> None:
        """Heartbeat every interval until the router goes silent or the supervisor is gone, then exit.

        ``sleep`` is the runtime's ``asyncio.sleep`` or ``trio.sleep``. Returns never unless cancelled or
        orphaned (then it requests ``EXIT_ORPHANED``).
        """
        while self.heartbeat():
            await sleep(self.options.heartbeat_interval)
        self._loop.request_exit(EXIT_ORPHANED)

    async def request(
        self,
        call_id: int,
        method: str,
        params: dict[str, Any],
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Send a REQUEST and wait for its REPLY (on the loop thread).

        ``call_id`` is the running call the request belongs to, or 0 for a request of the worker's own
        (the task queue's tool calls); ``on_progress`` then receives the progress of that tool call.

        Raises:
            InputRequired: the request went to the client in an ``input_required`` result (2026-07-28).
            ClientRequestError: the answer was an error, or the request would be a frame over
                ``max_message_size`` (not sent).

        Cancellation: the waiter is forgotten and, for a request of the worker's own, the router is told
        to cancel it (REQUEST_CANCEL); a REPLY that arrives later is dropped.
        """
        if not self.announced:  # the router ignores a worker until its READY: hold the request till then
            announced = self._loop.new_waiter()
            self._announce_waiters.append(announced)
            await announced.wait()
        request_id = next(self._request_ids)
        frame = encode(Request(call_id, request_id, method, params))
        if len(frame) > self.options.max_message_size:  # the router's socket would drop it unseen
            what = f"the {method} request" + (
                f" for {params.get('name')!r}" if method == "tools/call" else ""
            )
            raise ClientRequestError(too_large(what, len(frame), self.options.max_message_size))
        waiter = self._loop.new_waiter()
        self.waiting[request_id] = waiter
        if on_progress is not None:
            self.request_progress[request_id] = on_progress
        answered = False
        try:
            self.send(frame)
            reply = await waiter.wait()
            answered = True
        finally:
            self.waiting.pop(request_id, None)
            self.request_progress.pop(request_id, None)
            if not answered and call_id == 0:
                self.send(encode(RequestCancel(request_id)))
        if reply.error is not None:
            code = int(reply.error.get("code", -32603))
            error = InputRequired if code == INPUT_PENDING else ClientRequestError
            raise error(str(reply.error.get("message", "request failed")), code, reply.error.get("data"))
        return reply.result or {}

    def heartbeat(self) -> bool:
        """Send one heartbeat; False when the router has been silent for the whole liveness window."""
        silent_for = time.monotonic() - self.last_heard
        if silent_for > self.options.heartbeat_interval * ORPHAN_MISSES:
            logger.error("no word from the router for %.1f s; exiting", silent_for)
            return False
        if os.getppid() != self.options.parent_pid:
            logger.error("supervisor (pid %d) is gone; exiting", self.options.parent_pid)
            return False
        self.send(encode(Heartbeat(self.in_flight())))
        return True
