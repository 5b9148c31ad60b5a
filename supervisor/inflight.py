"""A call in flight, as the router holds it: the events its worker sent that the caller has not taken yet
(``PendingCall``), and its last-resort timeout (``Backstop``).

The router's frame dispatch ``put``s each PROGRESS, LOG, REQUEST, RESULT or ERROR of the call (or the
``WorkerLostError`` of its worker's death) and the calling task takes them in order (``answer``). Not
thread-safe: both sides run on the supervisor's loop.

The backstop is for a worker that cannot enforce the call's own deadline. The worker answers "timed out"
at the deadline itself; when its loop is blocked it cannot, so the router gives it ``BACKSTOP_MARGIN``
more seconds, then cancels the calling task and the call answers ``CallTimeoutError``. One sweeper task
cancels every call past its backstop, instead of a timer per call: ``asyncio.timeout`` costs about 9 µs a
call, a twentieth of the front's whole CPU per call (see docs/performance-changes.md). The price is that a
backstop fires up to ``SWEEP_INTERVAL`` late.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from shared.errors import WorkerLostError, error_for_code
from shared.protocol import Error, Log, Message, Progress, Request, Result

from .links import WorkerLink
from .router_types import LogCallback, ProgressCallback, RequestCallback

StartRequest = Callable[[WorkerLink, Request, RequestCallback | None, set[asyncio.Task[None]]], None]
"""Starts answering a request a running tool made, in a task kept in the set while it runs
(``WorkerRequests.start_for_call``)."""

BACKSTOP_MARGIN = 2.0
"""The router gives a worker this long past the call's deadline to answer with its own timeout error."""
SWEEP_INTERVAL = 0.25
"""How often the sweeper looks for calls past their backstop (so a backstop fires up to this late)."""


@dataclass(eq=False, slots=True)
class Backstop:
    """Past ``deadline`` (``loop.time()``) the sweeper cancels ``task`` and sets ``fired``."""

    task: asyncio.Task[Any]
    deadline: float
    fired: bool = False


async def serve_sweeper(backstops: set[Backstop]) -> NoReturn:
    """Every ``SWEEP_INTERVAL``, cancel the task of each backstop in ``backstops`` past its deadline,
    once; returns never. The caller adds a call's backstop before it awaits and discards it after.

    Cancellation: cancel the task running it to stop it.
    """
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        now = loop.time()
        for backstop in list(backstops):
            if not backstop.fired and now >= backstop.deadline:
                backstop.fired = True
                backstop.task.cancel()


def fail_in_flight(link: WorkerLink, pending: dict[int, PendingCall], error: WorkerLostError) -> None:
    """Answer every call ``link`` holds (of the in-flight table ``pending``) with ``error``."""
    for call_id in list(link.in_flight):
        call = pending.get(call_id)
        if call is not None:
            call.put(error)
    link.in_flight.clear()


@dataclass(eq=False, slots=True)
class PendingCall:
    """The call ``call_id`` of ``tool``, sent to ``link``."""

    call_id: int
    tool: str
    link: WorkerLink
    loop: asyncio.AbstractEventLoop
    events: deque[Message | WorkerLostError] = field(default_factory=deque)
    waiter: asyncio.Future[None] | None = None
    requests: set[asyncio.Task[None]] = field(default_factory=set)
    """The tasks answering the requests the tool made, cancelled when the call ends."""
    finished: bool = False
    """The worker answered (or died): nothing to CANCEL when the caller leaves."""

    def put(self, event: Message | WorkerLostError) -> None:
        self.events.append(event)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> Message | WorkerLostError:
        """The next event, in order; a plain future per wait (cheaper than an ``asyncio.Queue``).

        Cancellation: only the wait is cancelled; the events stay.
        """
        while not self.events:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.events.popleft()

    async def answer(
        self,
        on_progress: ProgressCallback | None,
        on_log: LogCallback | None,
        on_request: RequestCallback | None,
        start_request: StartRequest,
    ) -> dict[str, Any]:
        """Hand the call's events to the caller's callbacks, in order, until its answer, and return its
        result (counted on the link). A request of the tool is started with ``start_request`` (answered
        by ``on_request``, or refused without it).

        Raises:
            CallError: the worker answered with an ERROR (``error_for_code``).
            WorkerLostError: the worker died or stopped.

        Cancellation: only the wait is cancelled; ``finished`` stays False (the router then sends CANCEL).
        """
        while True:
            event = await self.get()
            if isinstance(event, Result):
                self.finished = True
                self.link.record_result(self.tool, event.result)
                if self.requests:  # requests sent just before the end: answered (recorded) first
                    await asyncio.sleep(0)
                return event.result
            if isinstance(event, Progress):
                if on_progress is not None:
                    await on_progress(event.progress, event.total, event.message)
            elif isinstance(event, Log):
                if on_log is not None:
                    await on_log(event.level, event.data, event.logger)
            elif isinstance(event, Request):
                start_request(self.link, event, on_request, self.requests)
            elif isinstance(event, Error):
                self.finished = True
                self.link.record_error(self.tool, event.message)
                raise error_for_code(event.code, event.message, event.data)
            elif isinstance(event, WorkerLostError):
                self.finished = True
                raise event
