"""The backstop: a call's last-resort timeout, for a worker that cannot enforce the call's own.

The worker enforces a call's deadline itself and answers "timed out" at it; when its loop is blocked it
cannot, so the router gives it ``BACKSTOP_MARGIN`` more seconds, then cancels the calling task and the call
answers ``CallTimeoutError``. One sweeper task cancels every call past its backstop, instead of a timer
per call: ``asyncio.timeout`` costs about 9 µs a call, a twentieth of the front's whole CPU per call (see
docs/performance-changes.md). The price is that a backstop fires up to ``SWEEP_INTERVAL`` late.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NoReturn

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
