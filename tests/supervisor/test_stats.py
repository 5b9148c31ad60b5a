"""Call statistics: outcomes, histogram buckets and recent percentiles."""

from __future__ import annotations

from supervisor.stats import LATENCY_BUCKETS, CallStats


def test_outcomes_buckets_and_percentiles() -> None:
    stats = CallStats()
    for millis in range(1, 101):
        stats.record("echo", "asyncio", "ok", millis / 1000)
    stats.record("echo", "asyncio", "tool_error", 0.5)
    echo = stats.tools["echo"]
    assert echo.count == 101 and echo.outcomes["ok"] == 100 and echo.outcomes["tool_error"] == 1
    assert sum(echo.bucket_counts) == 101
    assert echo.bucket_counts[LATENCY_BUCKETS.index(0.001)] == 1  # 1 ms falls in the "≤ 1 ms" bucket
    percentiles = echo.percentiles()
    assert percentiles["p50_ms"] == 51.0 and percentiles["p99_ms"] == 100.0
    assert stats.total() == 101


def test_no_calls_no_percentiles() -> None:
    stats = CallStats()
    stats.record("t", "trio", "ok", 0.01)
    stats.tools["t"].recent.clear()
    assert stats.tools["t"].percentiles() == {"p50_ms": None, "p90_ms": None, "p99_ms": None}


def test_the_supervisors_own_queue_polls_are_not_counted() -> None:
    stats = CallStats()
    stats.record("tasks:stats", "trio-queue", "ok", 0.001)
    stats.record("tasks:workflows", "trio-queue", "ok", 0.001)
    stats.record("tasks:get", "trio-queue", "ok", 0.001)
    assert list(stats.tools) == ["tasks:get"] and stats.total() == 1
