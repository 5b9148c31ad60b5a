"""The Trio worker: one DEALER socket (through ``TrioZmqSocket``), one cancel scope per call, sync tools in
Trio's worker threads.

The socket is read by one task at a time, a *reader* (``_read_and_run``), which waits inside a cancel scope
entered in advance for the next call. The first CALL of a read runs in that reader, in that scope (given the
call's deadline), as soon as the read is handled, in a ``contextvars`` context of its own
(``trio_worker.stepping``). A call that does not suspend has sent its RESULT before the loop's next turn, and
the reader reads on, in the same scope unless something cancelled it: no task is spawned and no scope entered
for such a call. A call that suspends hands the socket to a new reader at that moment and keeps the task
until it ends. Further CALLs of the same read each get a task and a scope of their own (``_run``). Measured
against a task and a scope per call: about 40% fewer instructions per no-op call, and its RESULT sent after
half the work (docs/performance-changes.md).

Cancellation: a CANCEL frame cancels the call's scope; a sync tool's thread cannot be interrupted, so it is
abandoned (``abandon_on_cancel``), its context is marked cancelled and its result is dropped. A deadline
that expires answers the call with a timeout error.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import zmq

from shared.exits import EXIT_STARTUP
from shared.launch import WorkerOptions
from shared.protocol import Reply
from shared.worker import PreparedCall, ToolHost, WorkerCore
from shared.zmqio.trio_socket import TrioZmqSocket

from .queue_service import QueueStartError, start_task_queue
from .stepping import run_stepped

logger = logging.getLogger("mcp_supervisor.worker")


class TrioWorker:
    """The Trio ``Loop`` of a worker process and its ``serve``; ``core`` does the rest."""

    def __init__(self, options: WorkerOptions, host: ToolHost, socket: zmq.Socket[bytes]) -> None:
        self.options = options
        self.host = host
        self._connected = socket
        """The DEALER ``run_worker`` connected to the router (before any privilege drop)."""
        self.core: WorkerCore[trio.CancelScope] = WorkerCore(options, host, self)
        self.running = self.core.running
        """The core's table of running calls, which this class fills and empties."""
        self._cancelled = self.core.cancelled
        """Calls cancelled by CANCEL and still unwinding (their scope also ends cancelled, as on a
        deadline; these send nothing)."""
        self._limiter = trio.CapacityLimiter(options.threads)
        self._run_sync = functools.partial(
            trio.to_thread.run_sync, abandon_on_cancel=True, limiter=self._limiter
        )
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._io: TrioZmqSocket | None = None
        self._exit_code = 0
        self._free_scope: trio.CancelScope | None = None
        """The scope the reading task entered for its next call, while it has none."""
        self._inline: PreparedCall | None = None
        """The call the reading task runs once its current read is handled."""

    def send(self, frame: bytes) -> None:
        assert self._io is not None
        self._io.send([frame])

    def start_call(self, call: PreparedCall) -> None:
        assert self._nursery is not None
        deadline = math.inf if call.timeout is None else trio.current_time() + call.timeout
        # one scope for both ways a call ends early: CANCEL cancels it, the deadline is its own
        scope = self._free_scope
        if scope is not None:  # the reader runs it, in the scope it waited in
            self._free_scope = None
            if deadline != math.inf:
                scope.deadline = deadline
            self._inline = call
        else:
            scope = trio.CancelScope(deadline=deadline)
            self._nursery.start_soon(self._run, call, scope)
        self.running[call.call_id] = scope

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: Any) -> None:
        assert self._token is not None
        self._token.run_sync_soon(fn, *args)

    def new_waiter(self) -> _EventWaiter:
        return _EventWaiter()

    def request_exit(self, code: int) -> None:
        self._exit_code = code
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _read_and_run(self) -> None:
        """Read the socket until the worker stops, running the first call of each read here (see the module
        docstring); returns once a call it ran has suspended (another reader took over) and ended."""
        assert self._io is not None and self._nursery is not None
        io, nursery = self._io, self._nursery
        handed_over = False

        def hand_over() -> None:
            nonlocal handed_over
            handed_over = True
            nursery.start_soon(self._read_and_run)

        while not handed_over:
            call: PreparedCall | None = None
            cancelled = False
            with trio.CancelScope() as scope:
                # One scope serves the calls that end without suspending, one after another, until one is
                # cancelled: leaving and entering a scope costs more than the rest of such a call. Between
                # calls nothing can cancel it: it is in no ``running`` entry and has no deadline.
                while not handed_over and not scope.cancel_called:
                    self._free_scope = scope
                    try:
                        await io.pump(self._on_frames, self._has_inline)
                    finally:
                        self._free_scope = None
                    call, self._inline = self._inline, None
                    if call is None:
                        return  # the socket closed
                    try:
                        coro = self.host.run(call, self._run_sync, self.core.threads)
                        await self._answer(call, run_stepped(coro, contextvars.copy_context(), hand_over))
                    finally:
                        cancelled = self._ended(call.call_id)
                    if call.timeout is not None:
                        scope.deadline = math.inf
                    call = None
            if call is not None and scope.cancelled_caught and not cancelled:  # the deadline (see _run)
                self.send(self.host.timeout_frame(call))

    async def _run(self, call: PreparedCall, scope: trio.CancelScope) -> None:
        """Run one call in a task of its own and send its RESULT; sends nothing when the call is cancelled."""
        try:
            with scope:
                await self._answer(call, self.host.run(call, self._run_sync, self.core.threads))
        finally:
            cancelled = self._ended(call.call_id)
        if scope.cancelled_caught and not cancelled:  # only the deadline cancels the scope without CANCEL
            self.send(self.host.timeout_frame(call))

    async def _answer(self, call: PreparedCall, run: Awaitable[bytes]) -> None:
        """Await the call's ``run`` inside its scope and send the RESULT it gives, unless CANCEL reached the
        call (a cancellation propagates: the caller's scope tells a deadline)."""
        frame = await run
        if call.call_id not in self._cancelled:
            self.send(frame)

    def _ended(self, call_id: int) -> bool:
        """Forget a call that ended; True when CANCEL reached it (nothing more is sent for it)."""
        self.running.pop(call_id, None)
        if call_id in self._cancelled:
            self._cancelled.discard(call_id)
            return True
        return False

    def _has_inline(self) -> bool:
        return self._inline is not None

    def _on_frames(self, frames: list[bytes]) -> None:
        self.core.handle(frames[-1])

    async def serve(self) -> int:
        """Connect, announce READY and answer the router until STOP; returns the exit code."""
        self.core.mark_loop_thread()
        self._token = trio.lowlevel.current_trio_token()
        socket, context = self._connected, self._connected.context
        self._io = TrioZmqSocket(socket, multipart=False)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._read_and_run)
                if self.options.service == "taskqueue":
                    # the database is open and recovered before READY; the engine's own requests to the
                    # router are held until READY is out (WorkerCore.request)
                    try:
                        await start_task_queue(self.core, nursery, self.options)
                    except QueueStartError as exc:  # one line, not a traceback per restart
                        logger.error("the task queue cannot start: %s", exc)
                        nursery.cancel_scope.cancel()
                        return EXIT_STARTUP
                self.send(self.core.ready_frame())
                nursery.start_soon(self.core.serve_heartbeats, trio.sleep)
        finally:
            self._io.close()
            context.term()
        return self._exit_code


def serve(options: WorkerOptions, host: ToolHost, socket: zmq.Socket[bytes]) -> int:
    """Run the Trio worker on ``socket`` (connected to the router) to completion; returns the exit code."""
    return trio.run(TrioWorker(options, host, socket).serve)


class _EventWaiter:
    """A Waiter over a trio.Event."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Reply | None = None

    def set(self, value: Reply) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    async def wait(self) -> Reply:
        await self._event.wait()
        assert self._value is not None
        return self._value
