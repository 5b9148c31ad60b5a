"""The worker's threads for sync tools, as the router must see them: busy, and held by cancelled calls.

A sync tool runs in a thread of a fixed pool (``--threads``) and cannot be interrupted: cancelling its call
(CANCEL, or the deadline) only marks ``ctx.cancelled``. A tool that ignores it keeps its thread to the
end, so a worker can have every thread taken by calls the router has already forgotten; it would then
look idle to the router while every sync call sent to it waits for a thread until it times out.
``ThreadLoad`` counts what the router cannot see and has it told (THREADS, ``shared.protocol.Threads``)
when it matters: the pool becomes full or stops being full, a cancelled call starts or stops holding a
thread. Those are rare events; a sync call that starts and ends on a pool with room sends nothing.

Threads: ``wrap``'s function runs in a pool thread, ``abandon`` on the event loop's; the counts are
guarded by a lock, and ``changed`` is called outside it, from either thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from ..protocol import Threads

T = TypeVar("T")


class ThreadLoad:
    """The state of a pool of ``size`` threads; ``changed()`` is called (from any thread) whenever the
    router should be sent a new ``snapshot()``."""

    def __init__(self, size: int, changed: Callable[[], None]) -> None:
        self.size = size
        self._changed = changed
        self._lock = threading.Lock()
        self._busy = 0
        self._running: dict[int, str] = {}
        """Call id → tool, for the calls whose function is running in a thread."""
        self._held: dict[int, str] = {}
        """Call id → tool, for those of them that were cancelled."""

    def wrap(self, call_id: int, tool: str, func: Callable[[], T]) -> Callable[[], T]:
        """``func`` counted as the thread of call ``call_id`` (of ``tool``) while it runs."""

        def run() -> T:
            with self._lock:
                self._busy += 1
                self._running[call_id] = tool
                full = self._busy == self.size
            if full:
                self._changed()
            try:
                return func()
            finally:
                with self._lock:
                    self._busy -= 1
                    self._running.pop(call_id, None)
                    released = self._held.pop(call_id, None) is not None
                    freed = self._busy == self.size - 1
                if released or freed:
                    self._changed()

        return run

    def abandon(self, call_id: int) -> None:
        """Call ``call_id`` was cancelled: if its function still runs in a thread, that thread is held."""
        with self._lock:
            tool = self._running.get(call_id)
            if tool is None or call_id in self._held:
                return
            self._held[call_id] = tool
        self._changed()

    def snapshot(self) -> Threads:
        """The THREADS message of the state now."""
        with self._lock:
            return Threads(self._busy, self.size, dict(Counter(self._held.values())))
