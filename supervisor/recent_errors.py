"""The last errors, with the worker they came from: a bounded ring for ``/status`` and the ``/ui`` page.

Two sources feed it: the router notes each call a worker answered with an error (an ERROR frame or an
``isError`` result; ``WorkerLink.record_result`` and ``record_error``), and the arbiter notes each worker
process that ended without being asked to (a crash, a kill, a failed start). Calls lost with a dead
worker are not noted one by one: the death is, once, and the calls are counted as ``worker_lost`` in the
call statistics. A graceful stop, a retirement after a reload and the supervisor's own polls of the task
queue (``stats.UNCOUNTED``) are not errors and are not noted.

Cheap on the call path: nothing happens for a call that succeeds; an error costs one dict and a
``deque.append`` (the ring drops the oldest). Entries are plain dicts, the wire form of ``/status``::

    {"seq": 17, "at": 1767225600.5, "kind": "call" | "exit", "worker": "asyncio-0", "pid": 4242,
     "tool": "echo" | None, "message": "one line, at most MESSAGE_CHARS characters"}

``seq`` grows by one per entry for the supervisor's life (a page tells a new entry from one it showed);
``at`` is a Unix time (seconds), as a person reads it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .stats import UNCOUNTED

CAPACITY = 50
"""Entries kept; the oldest is dropped first."""
MESSAGE_CHARS = 300
"""A message is cut to its first line and to this many characters."""


def one_line(message: str) -> str:
    """``message``'s first non-blank line, cut to ``MESSAGE_CHARS`` characters (``…`` marks a cut)."""
    line = next((part.strip() for part in message.splitlines() if part.strip()), "")
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def result_message(result: dict[str, Any]) -> str:
    """The text of an ``isError`` result: its first text block, or a placeholder."""
    for block in result.get("content") or ():
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        if isinstance(text, str):
            return text
    return "the tool answered an error without text"


class RecentErrors:
    """The ring (see the module docstring). ``clock`` is the wall clock (a test passes its own)."""

    def __init__(self, capacity: int = CAPACITY, clock: Callable[[], float] = time.time) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = 0
        self._clock = clock

    def call_failed(self, worker: str, pid: int, tool: str, message: str) -> None:
        """Note a call of ``tool`` (an entry reference) that ``worker`` answered with an error."""
        if tool not in UNCOUNTED:
            self._add("call", worker, pid, tool, message)

    def worker_exited(self, worker: str, pid: int | None, message: str) -> None:
        """Note a worker process that ended unasked (``pid`` is ``None`` when it could not start)."""
        self._add("exit", worker, pid, None, message)

    def _add(self, kind: str, worker: str, pid: int | None, tool: str | None, message: str) -> None:
        self._seq += 1
        self._entries.append(
            {
                "seq": self._seq,
                "at": round(self._clock(), 3),
                "kind": kind,
                "worker": worker,
                "pid": pid,
                "tool": tool,
                "message": one_line(message),
            }
        )

    def entries(self) -> list[dict[str, Any]]:
        """The entries kept, newest first (copies: the caller may keep or change them)."""
        return [dict(entry) for entry in reversed(self._entries)]
