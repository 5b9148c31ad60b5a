"""The engine of this process: set by the queue worker before it announces READY, used by the tools."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import QueueUnavailableError

if TYPE_CHECKING:
    from .engine import Engine

_engine: Engine | None = None


def set_engine(engine: Engine | None) -> None:
    """Make ``engine`` the one the task-queue tools of this process use (``None`` forgets it)."""
    global _engine
    _engine = engine


def get_engine() -> Engine:
    """The engine set with ``set_engine``.

    Raises:
        QueueUnavailableError: none is set — the task-queue tools only work in the queue worker process.
    """
    if _engine is None:
        raise QueueUnavailableError("the task queue is not running in this process")
    return _engine
