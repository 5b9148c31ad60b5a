"""A token bucket per principal: ``rate`` requests a second, bursts of up to ``burst``.

Buckets of callers idle long enough to be full again are dropped when the table grows past
``MAX_BUCKETS``, so a stream of new principals cannot grow it without bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_BUCKETS = 100_000


class RateLimiter:
    """Token buckets by key (a principal's subject, or a client address without authorization)."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, rate if burst is None else burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        """Key → (tokens, when they were counted)."""

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when it was there, else the seconds until one will be."""
        now = self._clock()
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= MAX_BUCKETS and key not in self._buckets:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


def retry_after(wait: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait of ``wait`` seconds."""
    return str(max(1, math.ceil(wait)))
