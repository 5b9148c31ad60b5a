"""Call statistics kept by the router: counters, latency histograms and recent percentiles per tool.

Cheap enough for the hot path (a few dict and list operations per call, no locks: one event loop).
Figures come from the supervisor's own view of each call, so they cover every worker process without
scraping any of them.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from shared.errors import (
    CallError,
    CallTimeoutError,
    NoWorkerError,
    ServerBusyError,
    ToolQuarantinedError,
    WorkerLostError,
)

from .queue_status import STATS_REF
from .workflow_graphs import WORKFLOWS_REF

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds (seconds) of the latency histogram exported on /metrics."""
RECENT_CALLS = 1024
"""How many recent latencies per tool the percentiles on /status are computed from."""

UNCOUNTED = frozenset({STATS_REF, WORKFLOWS_REF})
"""Entries whose calls are not counted: the supervisor's own polls of the task queue for /status,
/metrics, ``top`` and the ``/ui`` page (counted, they would show as one call per refresh in ``top``'s
calls/s)."""

OUTCOMES = (
    "ok", "tool_error", "protocol_error", "busy", "worker_lost", "timeout", "cancelled", "quarantined",
)  # fmt: skip
ANSWERED = ("ok", "tool_error")
"""Outcomes of a call its worker answered (the tool ran to its end without killing the worker)."""

_OUTCOME_OF: dict[type[CallError], str] = {
    ServerBusyError: "busy",
    NoWorkerError: "busy",
    WorkerLostError: "worker_lost",
    ToolQuarantinedError: "quarantined",
    CallTimeoutError: "timeout",
}


def outcome_of(exc: CallError) -> str:
    """The outcome (one of ``OUTCOMES``) a call that failed with ``exc`` is counted under."""
    return _OUTCOME_OF.get(type(exc), "protocol_error" if exc.is_protocol_error else "tool_error")


@dataclass(slots=True)
class ToolStats:
    runtime: str
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_CALLS))

    def record(self, outcome: str, seconds: float) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.recent.append(seconds)

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    def percentiles(self) -> dict[str, float | None]:
        """p50, p90 and p99 of the recent calls, in milliseconds (None before the first call)."""
        if not self.recent:
            return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
        ordered = sorted(self.recent)
        last = len(ordered) - 1
        return {
            f"p{q}_ms": round(ordered[min(last, int(q / 100 * len(ordered)))] * 1000, 3) for q in (50, 90, 99)
        }


class CallStats:
    """Statistics of every tool call the router answered."""

    def __init__(self) -> None:
        self.tools: dict[str, ToolStats] = {}

    def record(self, tool: str, runtime: str, outcome: str, seconds: float) -> None:
        """Count one call of ``tool`` (an entry reference), unless it is one of ``UNCOUNTED``."""
        if tool in UNCOUNTED:
            return
        stats = self.tools.get(tool)
        if stats is None:
            stats = self.tools[tool] = ToolStats(runtime)
        stats.record(outcome, seconds)

    def answered(self, tool: str) -> int:
        """Calls of ``tool`` its worker answered so far (``ANSWERED`` outcomes)."""
        stats = self.tools.get(tool)
        return 0 if stats is None else sum(stats.outcomes.get(outcome, 0) for outcome in ANSWERED)

    def total(self) -> int:
        return sum(stats.count for stats in self.tools.values())
