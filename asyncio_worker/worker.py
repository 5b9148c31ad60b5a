"""The asyncio worker: one DEALER socket (``AsyncioZmqSocket``), one task per call, started eagerly from
the socket's reader callback (a call that does not suspend answers before the callback returns), sync
tools in a thread pool.

Cancellation: a CANCEL frame cancels the call's task; a sync tool's thread cannot be interrupted, so its
context is marked cancelled (``ctx.cancelled``) and its result is dropped. A deadline that expires answers
the call with a timeout error and cancels it the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zmq

from shared.launch import WorkerOptions
from shared.protocol import Reply
from shared.worker import PreparedCall, ToolHost, WorkerCore
from shared.zmqio.asyncio_socket import AsyncioZmqSocket

from .eager import start_eager_task

logger = logging.getLogger("mcp_supervisor.worker")

try:  # uvloop is optional: a faster loop when it is installed
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


class AsyncioWorker:
    """The asyncio ``Loop`` of a worker process and its ``serve``; ``core`` does the rest."""

    def __init__(self, options: WorkerOptions, host: ToolHost, socket: zmq.Socket[bytes]) -> None:
        self.options = options
        self.host = host
        self._connected = socket
        """The DEALER ``run_worker`` connected to the router (before any privilege drop)."""
        self.core: WorkerCore[asyncio.Task[None]] = WorkerCore(options, host, self)
        self.running = self.core.running
        """The core's table of running calls, which this class fills and empties."""
        self._cancelled = self.core.cancelled
        """The core's record of calls CANCEL reached; emptied here as they end (``_expired`` tells a
        deadline from any other cancellation)."""
        self._pool = ThreadPoolExecutor(max_workers=options.threads, thread_name_prefix="tool")
        self._exit: asyncio.Future[int] | None = None
        self._socket: AsyncioZmqSocket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: dict[int, asyncio.TimerHandle] = {}
        """call id → the deadline timer of a call that suspended (a call finished at once needs none)."""
        self._expired: set[int] = set()
        """Calls cancelled by their deadline, not yet unwound."""

    def send(self, frame: bytes) -> None:
        assert self._socket is not None
        try:
            self._socket.send([frame])
        except zmq.ZMQError as exc:
            logger.error("cannot send to the router: %s", exc)

    def start_call(self, call: PreparedCall) -> None:
        """Start the call's task eagerly (``start_eager_task``): a call that finishes without suspending has
        sent its RESULT when this returns, and never enters ``running``. The deadline timer is armed only
        for a call that suspended."""
        assert self._loop is not None
        task, finished = start_eager_task(self._loop, self._run(call))
        if finished:
            return
        self.running[call.call_id] = task
        if call.timeout is not None:
            self._timers[call.call_id] = self._loop.call_later(call.timeout, self._expire, call.call_id)

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def new_waiter(self) -> _FutureWaiter:
        assert self._loop is not None
        return _FutureWaiter(self._loop.create_future())

    def request_exit(self, code: int) -> None:
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(code)

    def _expire(self, call_id: int) -> None:
        """The call's deadline passed: cancel its task; ``_run`` turns that cancellation into a timeout."""
        self._timers.pop(call_id, None)
        task = self.running.get(call_id)
        if task is not None:
            self._expired.add(call_id)
            task.cancel()

    def _run_sync(self, func: Callable[[], Any]) -> asyncio.Future[Any]:
        assert self._loop is not None
        return self._loop.run_in_executor(self._pool, func)

    async def _run(self, call: PreparedCall) -> None:
        """Run one call and send its RESULT; sends nothing when the call is cancelled.

        Cancellation: a cancellation by ``_expire`` alone (the deadline) becomes the timeout result, like
        ``asyncio.timeout`` would make it; any other (CANCEL, the worker exiting) propagates.
        """
        call_id = call.call_id
        try:
            frame = await self.host.run(call, self._run_sync, self.core.threads)
        except asyncio.CancelledError:
            task = self.running.get(call_id)
            if call_id not in self._expired or task is None or task.uncancel() > 0:
                raise
            frame = self.host.timeout_frame(call)
        finally:
            if self.running.pop(call_id, None) is not None:
                self._expired.discard(call_id)
                self._cancelled.discard(call_id)
                timer = self._timers.pop(call_id, None)
                if timer is not None:
                    timer.cancel()
        self.send(frame)

    async def serve(self) -> int:
        """Connect, announce READY and answer the router until STOP; returns the exit code."""
        self._loop = asyncio.get_running_loop()
        self.core.mark_loop_thread()
        self._exit = self._loop.create_future()
        socket, context = self._connected, self._connected.context
        handle = self.core.handle
        self._socket = AsyncioZmqSocket(socket, lambda frames: handle(frames[-1]), multipart=False)
        self._socket.start()
        self.send(self.core.ready_frame())
        background = [self._loop.create_task(self.core.serve_heartbeats(asyncio.sleep))]
        try:
            return await self._exit
        finally:
            tasks = [*background, *self.running.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._socket.close(linger=1000)  # let the last answers out
            context.term()


def serve(options: WorkerOptions, host: ToolHost, socket: zmq.Socket[bytes]) -> int:
    """Run the asyncio worker on ``socket`` (connected to the router) to completion (uvloop when
    available); returns the exit code."""
    worker = AsyncioWorker(options, host, socket)
    if uvloop is not None:
        return uvloop.run(worker.serve())
    return asyncio.run(worker.serve())


class _FutureWaiter:
    """A Waiter over an asyncio future."""

    def __init__(self, future: asyncio.Future[Reply]) -> None:
        self._future = future

    def set(self, value: Reply) -> None:
        if not self._future.done():
            self._future.set_result(value)

    async def wait(self) -> Reply:
        return await self._future
