"""The worker slots a configuration asks for (``asyncio-0``, ``trio-0``, ..., ``trio-queue``), their
spares' names, and the CPU core of each when pinning."""

from __future__ import annotations

import psutil

QUEUE_POOL = "trio-queue"
"""The pool of the task-queue worker: a singleton Trio worker that owns the task database."""
SINGLETON_POOLS = frozenset({QUEUE_POOL})
"""Pools whose replacement must not overlap the old process (it owns a resource alone); they get no spare."""


def plan_cpus(worker_ids: list[str], pin: bool) -> dict[str, int | None]:
    """Round-robin the workers over the cores this process may use (``None`` everywhere when not pinning)."""
    if not pin:
        return dict.fromkeys(worker_ids)
    try:
        cores = sorted(psutil.Process().cpu_affinity() or [])
    except (AttributeError, psutil.Error):  # platforms without affinity support
        return dict.fromkeys(worker_ids)
    if not cores:
        return dict.fromkeys(worker_ids)
    return {worker_id: cores[i % len(cores)] for i, worker_id in enumerate(worker_ids)}


def worker_slots(counts: dict[str, int], task_queue: bool = False) -> list[tuple[str, str, str]]:
    """``(worker_id, runtime, pool)`` triples, interleaving runtimes so that the first of each land on
    different cores; the task-queue worker, when enabled, comes last."""
    slots: list[tuple[str, str, str]] = []
    for index in range(max(counts.values(), default=0)):
        for runtime, count in counts.items():
            if index < count:
                slots.append((f"{runtime}-{index}", runtime, runtime))
    if task_queue:
        slots.append((QUEUE_POOL, "trio", QUEUE_POOL))
    return slots


def spare_ids(counts: dict[str, int], spares: int) -> list[tuple[str, str]]:
    """``(spare_id, pool)`` pairs: ``spares`` per pool that has workers (``asyncio-spare-0``, ...); the
    singleton pools have none."""
    return [
        (f"{runtime}-spare-{index}", runtime)
        for runtime, count in counts.items()
        if count > 0 and runtime not in SINGLETON_POOLS
        for index in range(spares)
    ]


def slot_order(worker_id: str) -> tuple[int, str]:
    """Sort key of worker ids: by index, then runtime (``asyncio-0, trio-0, asyncio-1``...)."""
    runtime, _, index = worker_id.rpartition("-")
    return (int(index) if index.isdigit() else 0, runtime)
