"""How far and how fast a pool may grow.

A worker is an interpreter that needs a core to start and to answer its heartbeats: ``ctl scale asyncio 99``
on 2 cores once started 98 interpreters at once, and the starting storm starved the running workers until
they missed their heartbeats and were killed. So:

- ``scale_refusal``: a scale-up past ``MAX_WORKERS_PER_CORE`` workers of one runtime per usable core is
  refused with a one-line reason (scaling down is always allowed); ``counts_refusal`` applies the same
  limit to a configuration, at start and on reload;
- ``start_batches``: new workers (of a scale, a reload or a restart) start a batch at a time, half the
  usable cores per batch (at least one), the next batch once the previous one is READY, so the running
  workers keep the other half. A batch that fails abandons the replacement and the running workers are
  left alone (``Arbiter._overlap``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

MAX_WORKERS_PER_CORE = 4
"""The most workers of one runtime ``ctl scale`` accepts per usable core."""

T = TypeVar("T")


def usable_cores() -> int:
    """The cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # platforms without affinity
        return max(1, os.cpu_count() or 1)


def scale_limit(cores: int | None = None) -> int:
    """The most workers of one runtime a scale-up may ask for on ``cores`` (default: the usable ones)."""
    return MAX_WORKERS_PER_CORE * (usable_cores() if cores is None else cores)


def scale_refusal(runtime: str, count: int, current: int, cores: int | None = None) -> str | None:
    """Why scaling ``runtime`` from ``current`` to ``count`` workers is refused, or None when it may go on."""
    cores = usable_cores() if cores is None else cores
    limit = scale_limit(cores)
    if count <= max(limit, current):
        return None
    return (
        f"{count} {runtime} workers is more than {limit} ({MAX_WORKERS_PER_CORE} per core on {cores} "
        f"core{'s' if cores != 1 else ''}): more would starve the running workers"
    )


def counts_refusal(counts: dict[str, int], cores: int | None = None) -> str | None:
    """Why a configuration's worker ``counts`` (runtime → workers) are refused, or None."""
    cores = usable_cores() if cores is None else cores
    for runtime, count in counts.items():
        if count > scale_limit(cores):
            return f"workers_{runtime} = {count}: " + str(scale_refusal(runtime, count, 0, cores))
    return None


def start_batches(workers: Sequence[T], cores: int | None = None) -> list[list[T]]:
    """``workers`` cut into the batches they start in: half the usable cores each, at least one."""
    size = max(1, (usable_cores() if cores is None else cores) // 2)
    return [list(workers[i : i + size]) for i in range(0, len(workers), size)]
