"""Liveness: the router's heartbeats to its workers, and the detection of a worker gone silent.

Every ``interval`` the router sends HEARTBEAT to each connected worker. A worker whose last frame (of any
kind) is older than ``LIVENESS_MISSES`` intervals is reported silent, once: the router stops routing to it
and the arbiter kills it (a blocked event loop or a stopped process). A tick that itself ran late (the
supervisor was too busy to listen) gives every worker the benefit of the doubt instead of declaring
healthy workers dead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import NoReturn

from shared.protocol import LIVENESS_MISSES, Heartbeat, Message

from .links import WorkerLink

logger = logging.getLogger("mcp_supervisor.router")


class Liveness:
    """Heartbeats for the workers connected as ``links`` (the router's table, read only).

    ``send(link, message)`` queues a frame and never raises; ``on_silent(link)`` is called once for a
    worker that went silent. ``clock`` is ``time.monotonic`` (the clock of ``WorkerLink.last_heard``).
    """

    def __init__(
        self,
        links: Mapping[bytes, WorkerLink],
        interval: float,
        send: Callable[[WorkerLink, Message], None],
        on_silent: Callable[[WorkerLink], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.silence_timeout = interval * LIVENESS_MISSES
        """A worker heard from longer ago than this is silent."""
        self._links = links
        self._send = send
        self._on_silent = on_silent
        self._clock = clock
        self._last_tick = clock()

    async def serve(self) -> NoReturn:
        """Tick every ``interval`` seconds; returns never.

        Cancellation: cancel the task running it to stop it.
        """
        self._last_tick = self._clock()
        while True:
            await asyncio.sleep(self.interval)
            self.tick()

    def tick(self) -> None:
        """Send a heartbeat to every worker heard from recently and report the ones that went silent."""
        now = self._clock()
        late = now - self._last_tick > self.interval * 2
        self._last_tick = now
        for link in list(self._links.values()):
            if late:
                link.last_heard = max(link.last_heard, now - self.interval)
            elif now - link.last_heard > self.silence_timeout:
                if not link.silent:  # report once; the arbiter kills it and the router then drops it
                    logger.error(
                        "%s (pid %d) missed %d heartbeats", link.worker_id, link.pid, LIVENESS_MISSES
                    )
                    link.silent = True
                    self._on_silent(link)
                continue
            self._send(link, Heartbeat(len(link.in_flight)))
