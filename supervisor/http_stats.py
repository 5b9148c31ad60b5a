"""HTTP request counts and latencies by path, for ``/metrics`` (``metrics.py``), counted from the start.

Kept apart from ``metrics.py`` so that counting needs no ``prometheus-client``: that is imported at the
first scrape (``metrics_page.py``).
"""

from __future__ import annotations

import bisect
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .stats import LATENCY_BUCKETS


class HTTPStats:
    """Counts HTTP requests by method, path and status, with a latency histogram by path."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def record(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        buckets = self.buckets.setdefault(path, [0] * (len(LATENCY_BUCKETS) + 1))
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds
        self.sums[path] = self.sums.get(path, 0.0) + seconds


class HTTPStatsMiddleware:
    """Pure ASGI middleware feeding ``HTTPStats``; known paths only, so labels stay bounded."""

    def __init__(self, app: ASGIApp, stats: HTTPStats, paths: frozenset[str]) -> None:
        self.app = app
        self.stats = stats
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = scope["path"] if scope["path"] in self.paths else "other"
            self.stats.record(scope["method"], path, status, time.perf_counter() - started)
