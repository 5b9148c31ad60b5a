"""Scheduling decisions, as pure functions: queue order, retry delays, which executor takes which task,
and when a queued task can be expected to start.

Nothing here awaits or touches the database; the engine feeds in its in-memory state and applies the
answers. That keeps the rules small enough to read and to test on their own.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .records import Backoff, Registration, TaskRecord

DEFAULT_MAX_CONCURRENT = 5
"""How many queue tasks a worker process runs at once unless ``worker_register`` says otherwise."""
MAX_BACKOFF = 3600.0
"""No retry waits longer than an hour."""
BUSY_BACKOFF = 0.5
BUSY_BACKOFF_MAX = 30.0
UNROUTABLE_STATES = frozenset({"stopping", "stopped", "draining", "failed", "dead", "exited", "gone"})
"""Worker states in which a process is listed but must not be given new tasks."""


def queue_key(task: TaskRecord) -> tuple[float, int]:
    """Dispatch order: higher ``order_priority`` first, then first in, first out."""
    return (-task.order_priority, task.order_seq)


def retry_delay(retry: int, factor: float, backoff: Backoff, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...).

    Exponential: ``factor * 2**(retry-1)``; linear: ``factor * retry``; at most ``MAX_BACKOFF``. Half of
    it is jitter: the result is uniform between half and all of that delay, so tasks that failed together
    do not all come back at the same instant.
    """
    base = factor * (2.0 ** (retry - 1) if backoff == "exponential" else float(retry))
    base = min(base, MAX_BACKOFF)
    return base / 2 + rng.random() * base / 2


def busy_delay(busy_retries: int, rng: random.Random) -> float:
    """Seconds to wait after the server answered "busy" for the ``busy_retries``-th time (not an attempt)."""
    base = min(BUSY_BACKOFF * 2.0 ** max(0, busy_retries - 1), BUSY_BACKOFF_MAX)
    return base / 2 + rng.random() * base / 2


@dataclass(slots=True)
class ExecutorView:
    """One executor as the scheduler sees it right now.

    ``kind`` is ``"process"`` for a worker process of the supervisor (maybe narrowed by a registration)
    and ``"registered"`` for a registration with no live process of that id. ``running`` counts the
    queue's tasks on it; ``in_flight`` is the router's count of all calls on the process (``None`` when it
    has no process).
    """

    worker_id: str
    kind: str
    live: bool
    registered: bool
    capabilities: frozenset[str]
    max_concurrent: int
    running: int = 0
    in_flight: int | None = None
    runtime: str | None = None
    pid: int | None = None
    state: str | None = None
    tools: frozenset[str] = field(default_factory=frozenset)

    @property
    def routable(self) -> bool:
        return self.live and (self.state or "").lower() not in UNROUTABLE_STATES

    @property
    def free(self) -> int:
        return max(0, self.max_concurrent - self.running)


def executor_views(
    workers: Iterable[Mapping[str, Any]],
    registrations: Mapping[str, Registration],
    running: Mapping[str, int],
) -> list[ExecutorView]:
    """The executors: every live worker process (narrowed by its registration, if any), then every
    registration without a live process, sorted by id within each group."""
    views: list[ExecutorView] = []
    seen: set[str] = set()
    for worker in sorted(workers, key=lambda w: str(w.get("id"))):
        worker_id = str(worker.get("id"))
        seen.add(worker_id)
        tools = frozenset(str(name) for name in worker.get("tools") or ())
        registration = registrations.get(worker_id)
        capabilities = tools
        limit = DEFAULT_MAX_CONCURRENT
        if registration is not None:
            limit = registration.max_concurrent_tasks
            if registration.capabilities:
                capabilities = tools & frozenset(registration.capabilities)
        in_flight = worker.get("in_flight")
        pid = worker.get("pid")
        views.append(
            ExecutorView(
                worker_id=worker_id,
                kind="process",
                live=True,
                registered=registration is not None,
                capabilities=capabilities,
                max_concurrent=limit,
                running=running.get(worker_id, 0),
                in_flight=int(in_flight) if isinstance(in_flight, int) else None,
                runtime=None if worker.get("runtime") is None else str(worker.get("runtime")),
                pid=int(pid) if isinstance(pid, int) else None,
                state=None if worker.get("state") is None else str(worker.get("state")),
                tools=tools,
            )
        )
    for worker_id in sorted(set(registrations) - seen):
        registration = registrations[worker_id]
        views.append(
            ExecutorView(
                worker_id=worker_id,
                kind="registered",
                live=False,
                registered=True,
                capabilities=frozenset(registration.capabilities),
                max_concurrent=registration.max_concurrent_tasks,
                running=running.get(worker_id, 0),
            )
        )
    return views


@dataclass(slots=True)
class Plan:
    """Which queued tasks start now and where, and why each of the others waits."""

    assignments: list[tuple[TaskRecord, str]]
    reasons: dict[str, str]


def unplaceable_reason(task_type: str, executors: Sequence[ExecutorView]) -> str | None:
    """Why no live executor could ever take a task of this type right now, or ``None`` if one could."""
    if any(e.routable and task_type in e.capabilities for e in executors):
        return None
    offline = [e.worker_id for e in executors if not e.live and task_type in e.capabilities]
    if offline:
        return (
            f"no live executor can run {task_type!r}: registered executor(s) {', '.join(offline)} "
            "have it as a capability but no live worker process"
        )
    return f"no live executor can run {task_type!r} (no worker process that serves it is up)"


def plan(
    queued: Iterable[TaskRecord],
    executors: Sequence[ExecutorView],
    not_ready: Mapping[str, str],
    queued_types: Collection[str] | None = None,
) -> Plan:
    """Assign queued tasks (in dispatch order) to executors with a free slot and the task type as capability.

    Higher-priority tasks choose first; a task that cannot start does not hold back the tasks behind it
    that can use other executors. Among the executors that can take a task, the one with the most free
    slots wins, then the one with the fewest calls in flight, then the lowest id. ``not_ready`` maps the
    ids of tasks still waiting for a retry delay to the reason.

    ``queued_types`` (every task type that has a queued task) lets the plan stop as soon as no executor
    with a free slot can run any of them, instead of walking the whole queue: the tasks it did not reach
    get no entry in ``reasons`` (``waiting_reason`` gives theirs).
    """
    free = {e.worker_id: e.free for e in executors if e.routable}
    assignments: list[tuple[TaskRecord, str]] = []
    reasons: dict[str, str] = {}
    blocked: dict[str, str] = {}

    def exhausted() -> bool:
        if queued_types is None:
            return False
        return not any(
            free[e.worker_id] > 0 and not e.capabilities.isdisjoint(queued_types)
            for e in executors
            if e.routable
        )

    if exhausted():
        return Plan(assignments, reasons)
    for task in queued:
        if task.task_id in not_ready:
            reasons[task.task_id] = not_ready[task.task_id]
            continue
        known = blocked.get(task.task_type)
        if known is not None:  # free slots only shrink during a plan: blocked stays blocked
            reasons[task.task_id] = known
            continue
        candidates = [e for e in executors if e.routable and task.task_type in e.capabilities]
        if not candidates:
            reasons[task.task_id] = blocked[task.task_type] = (
                unplaceable_reason(task.task_type, executors) or "no executor"
            )
            continue
        open_ = [e for e in candidates if free[e.worker_id] > 0]
        if not open_:
            busy = ", ".join(
                f"{e.worker_id} {e.max_concurrent - free[e.worker_id]}/{e.max_concurrent}" for e in candidates
            )
            reasons[task.task_id] = blocked[task.task_type] = (
                f"waiting for a free slot on an executor that runs {task.task_type!r} ({busy})"
            )
            continue
        chosen = min(
            open_,
            key=lambda e: (-free[e.worker_id], e.in_flight if e.in_flight is not None else 0, e.worker_id),
        )
        free[chosen.worker_id] -= 1
        assignments.append((task, chosen.worker_id))
        if free[chosen.worker_id] == 0 and exhausted():
            break
    return Plan(assignments, reasons)


def waiting_reason(task_type: str, executors: Sequence[ExecutorView]) -> str | None:
    """Why a queued task of this type waits, judged from the executors as they are now (``None``: an
    executor that can run it has a free slot, so it starts at the next dispatch)."""
    candidates = [e for e in executors if e.routable and task_type in e.capabilities]
    if not candidates:
        return unplaceable_reason(task_type, executors)
    if any(e.free > 0 for e in candidates):
        return None
    busy = ", ".join(f"{e.worker_id} {e.max_concurrent - e.free}/{e.max_concurrent}" for e in candidates)
    return f"waiting for a free slot on an executor that runs {task_type!r} ({busy})"


def mean_durations(samples: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The average measured execution time of each task type that has at least one successful run."""
    return {kind: sum(values) / len(values) for kind, values in samples.items() if values}


def estimate_starts(
    queued: Sequence[TaskRecord],
    running: Sequence[tuple[TaskRecord, str]],
    executors: Sequence[ExecutorView],
    means: Mapping[str, float],
    now: float,
    *,
    paused: bool,
) -> dict[str, float | None]:
    """When each queued task can be expected to start (wall-clock seconds), or ``None`` when unknown.

    A simulation of the dispatcher over the executors' slots, fed only with measured averages: a running
    task is expected to end at its start plus the average execution time of its type (or now, when it has
    already run longer than that); a queued task occupies its slot for its type's average. Whenever a
    number it would need has never been measured — a task type that never completed, or a slot whose end
    depends on one — the answer is ``None``, not a guess. A paused queue has no estimates; a task no live
    executor can take has none either.
    """
    if paused:
        return {task.task_id: None for task in queued}
    slots: dict[str, list[float | None]] = {}
    for executor in executors:
        if not executor.routable:
            continue
        ends: list[float | None] = []
        for task, worker_id in running:
            if worker_id != executor.worker_id:
                continue
            mean = means.get(task.task_type)
            start = task.started_at if task.started_at is not None else now
            ends.append(None if mean is None else max(now, start + mean))
        # A slot frees when one of its running tasks ends; with more running than the limit, the earliest
        # ends free nothing. Unknown ends sort last (they could be anywhere).
        ends.sort(key=lambda end: math.inf if end is None else end)
        extra = len(ends) - executor.max_concurrent
        if extra > 0:
            ends = ends[extra:]
        ends.extend([now] * max(0, executor.max_concurrent - len(ends)))
        slots[executor.worker_id] = ends
    estimates: dict[str, float | None] = {}
    for task in queued:
        candidates = [
            e.worker_id for e in executors if e.worker_id in slots and task.task_type in e.capabilities
        ]
        if not candidates or not any(slots[c] for c in candidates):
            estimates[task.task_id] = None
            continue
        earliest: list[tuple[float, str, int]] = []
        unknown = False
        for worker_id in candidates:
            for index, end in enumerate(slots[worker_id]):
                if end is None:
                    unknown = True
                else:
                    earliest.append((end, worker_id, index))
        ready_at = max(now, task.not_before or now)
        best = min(earliest) if earliest else None
        if best is None or (unknown and best[0] > now):
            estimates[task.task_id] = None
            for worker_id in candidates:  # it takes some slot we cannot tell: later tasks are unknown too
                known = [i for i, end in enumerate(slots[worker_id]) if end is not None]
                if known:
                    slots[worker_id][min(known, key=lambda i: slots[worker_id][i] or 0.0)] = None
            continue
        end, worker_id, index = best
        start = max(end, ready_at)
        estimates[task.task_id] = start
        mean = means.get(task.task_type)
        slots[worker_id][index] = None if mean is None else start + mean
    return estimates
