"""The Trio worker: one DEALER socket (through ``TrioZmqSocket``), one cancel scope per call, sync tools in
Trio's worker threads.

Cancellation: a CANCEL frame cancels the call's scope; a sync tool's thread cannot be interrupted, so it is
abandoned (``abandon_on_cancel``), its context is marked cancelled and its result is dropped. A deadline
that expires answers the call with a timeout error.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

import trio
import zmq

from shared.exits import EXIT_STARTUP
from shared.launch import WorkerOptions
from shared.protocol import Reply
from shared.worker import PreparedCall, ToolHost, WorkerCore
from shared.zmqio.trio_socket import TrioZmqSocket

from .queue_service import QueueStartError, start_task_queue

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

    def send(self, frame: bytes) -> None:
        assert self._io is not None
        self._io.send([frame])

    def start_call(self, call: PreparedCall) -> None:
        assert self._nursery is not None
        # one scope for both ways a call ends early: CANCEL cancels it, the deadline is its own
        scope = trio.CancelScope(
            deadline=math.inf if call.timeout is None else trio.current_time() + call.timeout
        )
        self.running[call.call_id] = scope
        self._nursery.start_soon(self._run, call, scope)

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: Any) -> None:
        assert self._token is not None
        self._token.run_sync_soon(fn, *args)

    def new_waiter(self) -> _EventWaiter:
        return _EventWaiter()

    def request_exit(self, code: int) -> None:
        self._exit_code = code
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _run(self, call: PreparedCall, scope: trio.CancelScope) -> None:
        """Run one call and send its RESULT; sends nothing when the call is cancelled."""
        frame = None
        try:
            with scope:
                frame = await self.host.run(call, self._run_sync, self.core.threads)
        finally:
            self.running.pop(call.call_id, None)
            cancelled = call.call_id in self._cancelled
            self._cancelled.discard(call.call_id)
        if cancelled:
            return  # CANCEL: nothing more for this call, whatever it returned while unwinding
        if scope.cancelled_caught:  # only the deadline cancels the scope without CANCEL
            frame = self.host.timeout_frame(call)
        if frame is not None:
            self.send(frame)

    async def serve(self) -> int:
        """Connect, announce READY and answer the router until STOP; returns the exit code."""
        self.core.mark_loop_thread()
        self._token = trio.lowlevel.current_trio_token()
        socket, context = self._connected, self._connected.context
        self._io = TrioZmqSocket(socket, multipart=False)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                handle = self.core.handle
                nursery.start_soon(self._io.pump, lambda frames: handle(frames[-1]))
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
