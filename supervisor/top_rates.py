"""Calls per second between two status documents of ``python -m supervisor top``.

A rate is the difference between two consecutive status documents divided by the time between them,
measured on the supervisor's own monotonic clock (``uptime_seconds``), so it does not depend on how fast
``top`` polls. Pure functions on plain status documents: no terminal, no supervisor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

WorkerKey = tuple[str, int | None]
"""A worker is (id, pid): during a reload a candidate and a retiring worker share an id."""
ToolKey = tuple[str, str]
"""A tool is (runtime, name)."""


@dataclass(frozen=True)
class Rates:
    """Calls per second between two status documents; ``None`` where there is nothing to compare
    (the first frame, a worker or tool that appeared in between, a supervisor that restarted)."""

    elapsed: float | None = None
    total: float | None = None
    workers: dict[WorkerKey, float | None] = field(default_factory=dict)
    tools: dict[ToolKey, float | None] = field(default_factory=dict)


def elapsed_between(previous: dict[str, Any] | None, current: dict[str, Any]) -> float | None:
    """Seconds between two status documents of the same supervisor process, from its own uptime;
    ``None`` without a previous document, when the pid differs, or when time did not advance."""
    if previous is None:
        return None
    before, now = previous.get("supervisor", {}), current.get("supervisor", {})
    if before.get("pid") != now.get("pid"):
        return None
    try:
        seconds = float(now["uptime_seconds"]) - float(before["uptime_seconds"])
    except (KeyError, TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def per_second(before: int | None, after: int | None, elapsed: float | None) -> float | None:
    """``(after - before) / elapsed``; ``None`` when a figure is missing or the counter went backwards
    (a counter that restarted from zero has no meaningful difference)."""
    if before is None or after is None or elapsed is None or elapsed <= 0 or after < before:
        return None
    return (after - before) / elapsed


def worker_key(worker: dict[str, Any]) -> WorkerKey:
    """(id, pid) of a worker entry."""
    return (str(worker.get("id")), worker.get("pid"))


def _worker_answered(worker: dict[str, Any]) -> int:
    """Calls the worker's current process answered: served + failed."""
    return int(worker.get("calls_served") or 0) + int(worker.get("calls_failed") or 0)


def tool_entries(status: dict[str, Any]) -> Iterator[tuple[ToolKey, dict[str, Any]]]:
    """Every ((runtime, tool), figures) of the document's ``tools``."""
    for runtime, tools in (status.get("tools") or {}).items():
        for name, figures in tools.items():
            yield (runtime, name), figures


def compute_rates(previous: dict[str, Any] | None, current: dict[str, Any]) -> Rates:
    """The calls/s of the supervisor (all calls answered), of each worker (served + failed; only for a
    worker whose id *and* pid were in both documents) and of each tool, between ``previous`` and
    ``current``. Never raises on a well-formed status document; a missing figure gives ``None``."""
    elapsed = elapsed_between(previous, current)
    if previous is None or elapsed is None:
        return Rates(
            workers={worker_key(w): None for w in current.get("workers", [])},
            tools={key: None for key, _ in tool_entries(current)},
        )
    total = per_second(previous["supervisor"].get("calls"), current["supervisor"].get("calls"), elapsed)
    before_workers = {
        worker_key(w): _worker_answered(w) for w in previous.get("workers", []) if w.get("pid") is not None
    }
    workers: dict[WorkerKey, float | None] = {}
    for worker in current.get("workers", []):
        key = worker_key(worker)
        workers[key] = per_second(before_workers.get(key), _worker_answered(worker), elapsed)
    before_tools = {key: figures.get("calls") for key, figures in tool_entries(previous)}
    tools: dict[ToolKey, float | None] = {}
    for tool_key, figures in tool_entries(current):
        # A tool first called between the two documents had 0 calls in the previous one.
        tools[tool_key] = per_second(before_tools.get(tool_key, 0), figures.get("calls"), elapsed)
    return Rates(elapsed=elapsed, total=total, workers=workers, tools=tools)
