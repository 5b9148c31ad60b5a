"""Drive a call's coroutine from inside the task that awaits it, in a ``contextvars`` context of its own, and
say when it first suspends.

The Trio worker runs the first call of each read in the task that read it (``TrioWorker``: a call that does not
suspend then costs no task of its own, and its RESULT goes out before the loop's next turn). Two things
must then still hold, and ``run_stepped`` provides them:

- **The socket keeps a reader.** The reading task is busy with the call; when the call suspends, it may stay
  suspended for a long time, so another task must take the socket over. ``on_suspend`` is called once, when
  the call's coroutine first yields to Trio, before Trio gets the yielded value: the worker starts the next
  reader there.
- **Each call has a context of its own**, as a task per call gives it: every step of the coroutine runs in
  ``context`` (``Context.run``), so a ``ContextVar`` a tool sets is seen by that call only, and the reading
  task's own context stays as it was for the calls it runs later.

Why this is sound in Trio: the call runs inside a real Trio task (the reading task) from its first step to
its last, so its cancel scope, the scopes and nurseries it opens, ``trio.lowlevel.current_task()`` and every
checkpoint belong to that one task, as they would to a task spawned for it. Nothing runs outside a task:
``run_stepped`` only forwards, unchanged, what the coroutine yields to Trio and what Trio sends or throws back
(Trio sends every outcome, cancellation included, and throws only to refuse a foreign yield), exactly as
the ``await`` it replaces would. What differs from a task per call is only what a tool could observe of
the task object itself: ``current_task()`` is the reading task, which may have read the socket before (its
``context`` attribute is not the context the call runs in).
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


@types.coroutine
def run_stepped(
    coro: Coroutine[Any, Any, T], context: contextvars.Context, on_suspend: Callable[[], object]
) -> Generator[Any, Any, T]:
    """Await ``coro`` with every step run in ``context``; call ``on_suspend()`` once, when it first yields.

    Returns what ``coro`` returns; raises what it raises. ``on_suspend`` runs in the awaiting task's own
    context, and an exception from it propagates (``coro`` is then closed).

    Cancellation: Trio delivers a cancellation as an outcome sent into the yield it interrupts, which this
    forwards like any other value; ``coro`` raises ``trio.Cancelled`` from its own await, as it would when
    awaited directly.
    """
    send = coro.send
    try:
        yielded = context.run(send, None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    try:
        on_suspend()
    except BaseException:
        coro.close()
        raise
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task (Trio: a foreign yield refused)
            try:
                yielded = context.run(coro.throw, exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        try:
            yielded = context.run(send, sent)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
