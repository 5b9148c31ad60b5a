"""``GET /metrics``: the Prometheus exposition, with ``prometheus-client`` imported at the first scrape.

``prometheus-client`` and what it imports (``wsgiref``, ``http.server``, ``gzip``, ``timeit``, ``mmap``)
weigh 1.0 MB of the supervisor's resident memory, paid by every supervisor whether or not anything
scrapes it. Nothing is lost by building the registry late: every figure is collected at scrape time from
the supervisor's own state (``metrics.py``), and the HTTP counts are kept from the start without it
(``http_stats.py``). The first scrape pays the import once, on the event loop (15 ms here, 40 ms on a
loaded machine).
"""

from __future__ import annotations

from collections.abc import Callable

from .http_stats import HTTPStats
from .types import SupervisorView


class MetricsPage:
    """The text ``/metrics`` answers; ``metrics.py`` is imported and its registry built at the first
    ``render``."""

    def __init__(self, supervisor: SupervisorView, http: HTTPStats) -> None:
        self._supervisor = supervisor
        self._http = http
        self._render: Callable[[], tuple[bytes, str]] | None = None

    def render(self) -> tuple[bytes, str]:
        """The current exposition and its content type."""
        if self._render is None:
            from .metrics import exposition

            self._render = exposition(self._supervisor, self._http)
        return self._render()
