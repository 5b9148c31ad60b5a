"""Start an asyncio task eagerly: its first step runs now, inside the task, instead of on the next loop turn.

Python 3.12 has this built in (``asyncio.eager_task_factory``); Python 3.11, which the project supports, has
not. For a call that finishes without suspending (most tool calls that only compute), the result frame
then goes out from the socket's reader callback, without a trip through the loop's ready queue: the
measured hop saved 20-30 µs (see docs/performance-changes.md).

``start_eager_task`` creates the task as usual (so ``asyncio.current_task()``, ``asyncio.timeout()``,
cancellation and the task's ``contextvars`` context are exactly those of an ordinary task), makes it the
loop's current task while the coroutine takes its first step, and leaves the rest to the task: the
coroutine is wrapped in ``_Continuation``, which hands the task the awaitable of that first step, or
finishes at once when the coroutine already did.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_eager_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]
) -> tuple[asyncio.Task[T], bool]:
    """Create a task for ``coro`` on ``loop`` (the running loop) and run its first step now; returns the
    task and whether the coroutine already finished (the task then finishes on its first turn, doing
    nothing more; ``task.done()`` is still False until then).

    Called from inside another task (the loop has one current task at a time), the task starts the
    ordinary way, on the loop's next turn. Exceptions of the first step are the task's, as for any task; this function does not raise them.

    Cancellation: the task can be cancelled as soon as this returns; a cancellation that arrives before
    the task's next step is thrown into the coroutine at the await it stopped at, as it would be for an
    ordinary task.
    """
    context = contextvars.copy_context()
    continuation: _Continuation[T] = _Continuation(coro)
    task: asyncio.Task[T] = loop.create_task(continuation, context=context)
    try:
        _enter_task(loop, task)
    except RuntimeError:  # another task is running: this one starts the ordinary way
        return task, False
    try:
        context.run(continuation.first_step)
    finally:
        _leave_task(loop, task)
    return task, continuation.finished


class _Continuation(Coroutine[Any, Any, T]):
    """A coroutine whose first step was taken by ``start_eager_task``; the task resumes it from there."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._first: Any = None
        """What the first step produced, until the task takes it: ``(True, awaitable)`` when the coroutine
        suspended, ``(False, (value, exception))`` when it finished; ``None`` once taken (or before the
        first step: then the task drives the coroutine as usual)."""

    def first_step(self) -> None:
        try:
            self._first = (True, self._coro.send(None))
        except StopIteration as stop:
            self._first = (False, (stop.value, None))
        except BaseException as exc:  # the task's outcome, raised from its first step below
            self._first = (False, (None, exc))

    @property
    def finished(self) -> bool:
        """The first step finished the coroutine (returned or raised)."""
        return self._first is not None and not self._first[0]

    def send(self, value: Any) -> Any:
        first = self._first
        if first is None:
            return self._coro.send(value)
        self._first = None
        suspended, outcome = first
        if suspended:
            return outcome  # the awaitable the coroutine stopped at: the task waits on it
        result, exc = outcome
        if exc is not None:
            raise exc
        raise StopIteration(result)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        first = self._first
        if first is not None:
            # cancelled before the task's first step: the task never saw the awaitable, so it cannot
            # cancel it; do what it would have done, then deliver the exception at that await
            self._first = None
            suspended, outcome = first
            if not suspended:
                raise typ if val is None else val
            if isinstance(outcome, asyncio.Future):
                outcome.cancel()
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - the asyncio Task throws one argument

    def close(self) -> None:
        self._first = None
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:  # pragma: no cover - only ever driven by its task
        raise TypeError("a _Continuation is driven by its task only")
