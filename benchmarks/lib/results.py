"""What one benchmark of ``python -m benchmarks`` produces: a ``Section`` of targets, context rows and
the details of how it measured them; ``benchmarks.report`` turns the sections into the report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal


class BenchmarkError(RuntimeError):
    """A benchmark could not produce figures it can stand behind (the message says why)."""


@dataclass
class Target:
    """One target of the issue, with the figure it is judged on and the ratio against the run's baseline.

    ``measured`` is compared with ``limit`` (``better`` says which way is good); for a target stated as a
    ratio (``≥ 4× the SDK-only server``) the two are ratios, for an absolute one (``≤ 150 µs``) absolute
    values. ``ratio`` is always the figure divided by its baseline of the same run (``ratio_of`` names it).
    """

    key: str
    what: str
    target: str
    limit: float | None
    better: Literal["lower", "higher"]
    measured: float | None
    ratio: float | None
    ratio_of: str
    absolute: str
    note: str = ""
    unavailable: str | None = None
    """Set when there is nothing to measure yet (the reason is shown instead of figures)."""

    @property
    def met(self) -> bool | None:
        if self.unavailable is not None or self.measured is None or self.limit is None:
            return None
        if math.isnan(self.measured):
            return None
        return self.measured <= self.limit if self.better == "lower" else self.measured >= self.limit

    @property
    def verdict(self) -> str:
        if self.unavailable is not None:
            return self.unavailable
        met = self.met
        return "not measured" if met is None else ("met" if met else "not met")

    @property
    def score(self) -> float | None:
        """How the figure stands against the target: 1 is the target, above 1 is better than it."""
        if self.met is None or self.measured is None or self.limit is None:
            return None
        if self.better == "lower":
            return self.limit / self.measured if self.measured > 0 else math.inf
        return self.measured / self.limit


@dataclass
class ContextRow:
    """A figure without a target, shown for context (a baseline's own behaviour, a second concurrency)."""

    what: str
    ratio: float | None
    ratio_of: str
    absolute: str


@dataclass
class Section:
    """What one benchmark produced."""

    name: str
    title: str
    targets: list[Target] = field(default_factory=list)
    context: list[ContextRow] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    """Markdown lines: how it was measured and the figures behind the table rows."""
    seconds: float = 0.0
    others: float = math.nan
    """Share of the machine's CPU time other processes used while this benchmark ran (0 on a quiet machine)."""
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """Figures other parts of the run use (the hop's p50 for the routing ratios, the e2e profile)."""
