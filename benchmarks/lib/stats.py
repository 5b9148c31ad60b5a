"""Percentiles, medians and ratios of a run's figures, and how the suite's report writes them.

Percentiles are nearest-rank (a value that was measured, never an interpolation); NaN stands for
"nothing measured" and a ratio with nothing to divide is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    """The median of the values that are not NaN; NaN when none is."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def ratio(value: float | None, base: float | None) -> float | None:
    """``value / base``, or ``None`` when either is missing or NaN or ``base`` is 0."""
    if value is None or base is None or math.isnan(value) or math.isnan(base) or base == 0:
        return None
    return value / base


@dataclass
class Latency:
    """Per-operation durations (ns) of one path."""

    name: str
    samples_ns: list[float]
    note: str = ""
    cpu_us: tuple[float, float] | None = None
    """CPU µs per call of this process and of the child, measured over the same loops."""

    def percentile_us(self, q: float) -> float:
        """Nearest-rank percentile in µs."""
        return percentile(self.samples_ns, q) / 1000

    @property
    def p50(self) -> float:
        return self.percentile_us(0.50)

    @property
    def p99(self) -> float:
        return self.percentile_us(0.99)

    @property
    def mean(self) -> float:
        return sum(self.samples_ns) / len(self.samples_ns) / 1000 if self.samples_ns else math.nan

    @property
    def count(self) -> int:
        return len(self.samples_ns)


@dataclass
class Throughput:
    """Calls completed with ``concurrency`` in flight, out of ``requested``, in ``seconds``."""

    name: str
    concurrency: int
    calls: int
    seconds: float
    requested: int

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else math.nan


# -- how the suite's report writes figures ---------------------------------------------------------------


def fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if value == 0:
        return "0×"
    if value < 0.01:
        return f"{value:.4f}×"
    if value < 10:
        return f"{value:.2f}×"
    return f"{value:,.0f}×" if value >= 100 else f"{value:.1f}×"


def fmt_us(value: float) -> str:
    """A duration given in µs, in the unit that reads best."""
    if math.isnan(value):
        return "—"
    if value >= 1_000_000:
        return f"{value / 1e6:.2f} s"
    if value >= 10_000:
        return f"{value / 1e3:.0f} ms"
    if value >= 1_000:
        return f"{value / 1e3:.1f} ms"
    return f"{value:.0f} µs" if value >= 10 else f"{value:.2f} µs"


def fmt_rate(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}/s"
