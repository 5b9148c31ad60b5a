"""/metrics in the Prometheus text format, with ``prometheus-client``.

Multi-process by construction: every figure is the supervisor's own view (the router's call statistics,
the arbiter's restarts, the sampler's psutil figures of each worker), collected at scrape time; nothing is
scraped from the worker processes. The one exception is the task queue's figures: the ``trio-queue``
worker's last ``tasks:stats`` answer (``queue_status.py``), which ``/metrics`` refreshes before it
collects; while that answer is stale (the last refresh failed) its families have no samples.

Names follow the conventions: ``mcp_supervisor_..._total`` for counters, ``_seconds`` and ``_bytes`` units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .http_stats import HTTPStats
from .queue_status import QueueStatus
from .stats import LATENCY_BUCKETS
from .types import SupervisorView


def _histogram(buckets: list[int]) -> list[tuple[str, float]]:
    cumulative, total = [], 0
    for bound, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], buckets, strict=True):
        total += count
        cumulative.append((bound, float(total)))
    return cumulative


class SupervisorCollector(Collector):
    """Reads the supervisor's state at every scrape."""

    def __init__(self, supervisor: SupervisorView, http: HTTPStats) -> None:
        self.supervisor = supervisor
        self.http = http

    def collect(self) -> Iterable[Metric]:
        router = self.supervisor.router
        arbiter = self.supervisor.arbiter
        sampler = self.supervisor.sampler

        calls = CounterMetricFamily(
            "mcp_supervisor_tool_calls",
            "Tool calls answered, by outcome.",
            labels=["tool", "runtime", "outcome"],
        )
        durations = HistogramMetricFamily(
            "mcp_supervisor_tool_call_duration_seconds",
            "Tool call latency seen by the router.",
            labels=["tool", "runtime"],
        )
        for tool, stats in router.stats.tools.items():
            for outcome, count in stats.outcomes.items():
                if count:
                    calls.add_metric([tool, stats.runtime, outcome], count)
            durations.add_metric([tool, stats.runtime], _histogram(stats.bucket_counts), stats.latency_sum)
        yield calls
        yield durations

        requests = CounterMetricFamily(
            "mcp_supervisor_http_requests",
            "HTTP requests, by method, path and status.",
            labels=["method", "path", "status"],
        )
        for (method, path, status), count in self.http.requests.items():
            requests.add_metric([method, path, status], count)
        yield requests
        fast_path = self.supervisor.fast_path_stats
        posts = CounterMetricFamily(
            "mcp_supervisor_mcp_posts",
            "POSTs to /mcp, by who answered: the fast path or the SDK.",
            labels=["served_by"],
        )
        posts.add_metric(["fast_path"], fast_path.served)
        posts.add_metric(["sdk"], fast_path.handed_over)
        yield posts
        refused = CounterMetricFamily(
            "mcp_supervisor_auth_refused",
            "Requests the authorization layer refused: unauthorized (401), forbidden (403), "
            "rate_limited (429), unavailable (503: the token could not be checked), "
            "session_limited (429: a principal's max_sessions_per_principal).",
            labels=["reason"],
        )
        auth = self.supervisor.auth_stats
        for reason, count in (
            ("unauthorized", auth.unauthorized),
            ("forbidden", auth.forbidden),
            ("rate_limited", auth.rate_limited),
            ("unavailable", auth.unavailable),
            ("session_limited", auth.session_limited),
        ):
            refused.add_metric([reason], count)
        yield refused
        table = self.supervisor.connections
        yield GaugeMetricFamily(
            "mcp_supervisor_http_connections", "HTTP connections open now.", value=table.open
        )
        closed = CounterMetricFamily(
            "mcp_supervisor_http_connections_closed",
            "Connections the front closed or refused to protect itself: evicted (idle, to make room), "
            "refused (503, every connection busy), header_timeout, body_timeout.",
            labels=["reason"],
        )
        for reason, count in (
            ("evicted", table.stats.evicted),
            ("refused", table.stats.refused),
            ("header_timeout", table.stats.header_timeouts),
            ("body_timeout", table.stats.body_timeouts),
        ):
            closed.add_metric([reason], count)
        yield closed
        http_durations = HistogramMetricFamily(
            "mcp_supervisor_http_request_duration_seconds", "HTTP request latency.", labels=["path"]
        )
        for path, buckets in self.http.buckets.items():
            http_durations.add_metric([path], _histogram(buckets), self.http.sums[path])
        yield http_durations

        restarts = CounterMetricFamily(
            "mcp_supervisor_worker_restarts", "Worker restarts.", labels=["worker", "runtime"]
        )
        in_flight = GaugeMetricFamily(
            "mcp_supervisor_in_flight_calls", "Calls a worker is running.", labels=["worker", "runtime"]
        )
        up = GaugeMetricFamily(
            "mcp_supervisor_worker_ready", "1 when the worker is ready.", labels=["worker", "runtime"]
        )
        cpu = GaugeMetricFamily(
            "mcp_supervisor_process_cpu_percent",
            "CPU use of a process, percent of one core.",
            labels=["process", "runtime"],
        )
        rss = GaugeMetricFamily(
            "mcp_supervisor_process_resident_memory_bytes",
            "Resident memory of a process.",
            labels=["process", "runtime"],
        )
        for worker in arbiter.workers.values():
            labels = [worker.worker_id, worker.runtime]
            restarts.add_metric(labels, arbiter.restarts_total(worker))
            up.add_metric(labels, 1.0 if worker.state == "ready" else 0.0)
            link = router.link_of(worker.pid) if worker.pid is not None else None
            in_flight.add_metric(labels, len(link.in_flight) if link else 0)
            figures = sampler.latest.get(worker.pid) if worker.pid is not None else None
            if figures:
                cpu.add_metric(labels, figures["cpu_percent"])
                rss.add_metric(labels, figures["rss_bytes"])
        for link in router.remote.links():  # a remote node's worker: routed to, not sampled here
            up.add_metric([link.worker_id, link.pool], 0.0 if link.draining else 1.0)
            in_flight.add_metric([link.worker_id, link.pool], len(link.in_flight))
        own = sampler.latest.get(self.supervisor.pid)
        if own:
            cpu.add_metric(["supervisor", "supervisor"], own["cpu_percent"])
            rss.add_metric(["supervisor", "supervisor"], own["rss_bytes"])
        yield from (restarts, in_flight, up, cpu, rss)

        ready = GaugeMetricFamily(
            "mcp_supervisor_runtime_ready", "1 when the runtime can take calls.", labels=["runtime"]
        )
        for runtime, is_ready in router.ready_pools().items():
            ready.add_metric([runtime], 1.0 if is_ready else 0.0)
        yield ready
        yield GaugeMetricFamily(
            "mcp_supervisor_queued_calls", "Calls waiting for room.", value=router.queued_calls
        )
        yield GaugeMetricFamily(
            "mcp_supervisor_quarantined_tools",
            "Tools quarantined now (they kept killing their worker; their calls are refused).",
            value=len(router.quarantine.documents()),
        )
        quarantines = CounterMetricFamily(
            "mcp_supervisor_tool_quarantines",
            "Times a tool was quarantined since the supervisor started.",
            labels=["tool"],
        )
        for tool, count in sorted(router.quarantine.totals.items()):
            quarantines.add_metric([tool], count)
        yield quarantines
        if self.supervisor.queue_status is not None:
            yield from queue_families(self.supervisor.queue_status)


def queue_families(queue: QueueStatus) -> list[Metric]:
    """The task queue's families, from its last ``tasks:stats`` answer (no samples while it is stale):
    unfinished tasks and tasks ended since the queue worker started, by status and origin (``mcp`` for
    MCP tasks, ``queue`` for the 20 tools'), whether it is paused, and tasks expired since it started."""
    tasks = GaugeMetricFamily(
        "mcp_supervisor_tasks",
        "Unfinished tasks of the task queue, by status and origin.",
        labels=["status", "origin"],
    )
    finished = CounterMetricFamily(
        "mcp_supervisor_tasks_finished",
        "Tasks of the task queue that ended since its worker started, by status and origin.",
        labels=["status", "origin"],
    )
    paused = GaugeMetricFamily("mcp_supervisor_task_queue_paused", "1 while the task queue is paused.")
    expired = CounterMetricFamily(
        "mcp_supervisor_tasks_expired",
        "Tasks the task queue's retention sweep deleted since its worker started.",
    )
    snapshot = queue.snapshot
    if snapshot is not None and not queue.stale:
        for family, counts in ((tasks, snapshot.get("tasks")), (finished, snapshot.get("finished"))):
            for status, origins in (counts or {}).items():
                for origin, count in (origins or {}).items():
                    family.add_metric([status, origin], count)
        paused.add_metric([], 1.0 if snapshot.get("paused") else 0.0)
        expired.add_metric([], snapshot.get("expired") or 0)
    return [tasks, finished, paused, expired]


def build_registry(supervisor: SupervisorView, http: HTTPStats) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SupervisorCollector(supervisor, http))
    return registry


def exposition(supervisor: SupervisorView, http: HTTPStats) -> Callable[[], tuple[bytes, str]]:
    """A function returning the current exposition (the text, its content type), from a registry built
    once."""
    registry = build_registry(supervisor, http)
    return lambda: (generate_latest(registry), CONTENT_TYPE_LATEST)
