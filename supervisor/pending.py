"""``PendingCall``: one entry of the router's in-flight table, the events a call's worker sent that its
caller has not taken yet.

The router's frame dispatch ``put``s each PROGRESS, LOG, REQUEST, RESULT or ERROR of the call (or the
``WorkerLostError`` of its worker's death) and the calling task ``get``s them in order. Not thread-safe:
both sides run on the supervisor's loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from shared.errors import WorkerLostError
from shared.protocol import Message

from .links import WorkerLink


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
