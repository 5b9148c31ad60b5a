"""The asyncio worker: one DEALER socket (``AsyncioZmqSocket``), one task per call, sync tools in a thread pool.

Cancellation: a CANCEL frame cancels the call's task; a sync tool's thread cannot be interrupted, so its
context is marked cancelled (``ctx.cancelled``) and its result is dropped. A deadline that expires answers
the call with a timeout error and cancels it the same way.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import zmq

from shared.protocol import Reply
from shared.tool_host import PreparedCall, ToolHost
from shared.worker import WorkerBase, WorkerOptions

from .zmq_io import AsyncioZmqSocket

logger = logging.getLogger("mcp_supervisor.worker")

try:  # uvloop is optional: a faster loop when it is installed
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


class AsyncioWorker(WorkerBase):
    def __init__(self, options: WorkerOptions, host: ToolHost) -> None:
        super().__init__(options, host)
        self._pool = ThreadPoolExecutor(max_workers=options.threads, thread_name_prefix="tool")
        self._exit: asyncio.Future[int] | None = None
        self._socket: AsyncioZmqSocket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, frame: bytes) -> None:
        assert self._socket is not None
        try:
            self._socket.send([frame])
        except zmq.ZMQError as exc:
            logger.error("cannot send to the router: %s", exc)

    def start_call(self, call: PreparedCall) -> None:
        assert self._loop is not None
        self.running[call.call_id] = self._loop.create_task(self._run(call))

    def new_waiter(self) -> _FutureWaiter:
        assert self._loop is not None
        return _FutureWaiter(self._loop.create_future())

    def request_exit(self, code: int) -> None:
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(code)

    async def _run(self, call: PreparedCall) -> None:
        """Run one call and send its RESULT; sends nothing when the call is cancelled."""
        assert self._loop is not None
        loop, pool = self._loop, self._pool
        try:
            try:
                async with asyncio.timeout(call.timeout):
                    frame = await self.host.run(call, lambda func: loop.run_in_executor(pool, func))
            except TimeoutError:  # only the deadline: the tool's own exceptions became frames in run()
                frame = self.host.timeout_frame(call)
            self.send(frame)
        finally:
            self.running.pop(call.call_id, None)

    async def serve(self) -> int:
        """Connect, announce READY and answer the router until STOP; returns the exit code."""
        self._loop = asyncio.get_running_loop()
        self.call_soon_threadsafe = self._loop.call_soon_threadsafe
        self.mark_loop_thread()
        self._exit = self._loop.create_future()
        context = zmq.Context()
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.IDENTITY, self.options.identity)
        socket.setsockopt(zmq.LINGER, 1000)
        socket.setsockopt(zmq.MAXMSGSIZE, self.options.max_message_size)
        socket.connect(self.options.router)
        self._socket = AsyncioZmqSocket(socket, lambda frames: self.handle(frames[-1]))
        self._socket.start()
        self.send(self.ready_frame())
        background = [self._loop.create_task(self.serve_heartbeats(asyncio.sleep))]
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


def serve(options: WorkerOptions, host: ToolHost) -> int:
    """Run the asyncio worker to completion (uvloop when available); returns the exit code."""
    worker = AsyncioWorker(options, host)
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
