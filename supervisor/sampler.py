"""psutil figures of the supervisor and its workers, sampled in a thread at most once a second and cached.

/status, /metrics and ``top`` read the cache, so a scrape never waits on /proc and the event loop never
blocks on psutil.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import psutil

SAMPLE_INTERVAL = 1.0

logger = logging.getLogger("mcp_supervisor.sampler")


class ProcessSampler:
    """Keeps ``latest[pid]`` = ``{cpu_percent, rss_bytes, open_fds, threads, cpu_affinity}``."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self._processes: dict[int, psutil.Process] = {}
        self.latest: dict[int, dict[str, Any]] = {}
        self.sampled_at = 0.0

    async def serve(self) -> None:
        """Sample every ``SAMPLE_INTERVAL`` until cancelled; never raises otherwise."""
        while True:
            pids = self._pids()
            try:
                self.latest = await asyncio.to_thread(self._sample, pids)
                self.sampled_at = time.monotonic()
            except Exception:  # psutil on a platform without some figure: keep serving
                logger.exception("sampling processes failed")
            await asyncio.sleep(SAMPLE_INTERVAL)

    def _sample(self, pids: list[int]) -> dict[int, dict[str, Any]]:
        figures: dict[int, dict[str, Any]] = {}
        for pid in pids:
            process = self._processes.get(pid)
            if process is None:
                try:
                    process = self._processes[pid] = psutil.Process(pid)
                    process.cpu_percent(None)  # the first call only starts the measurement
                except psutil.Error:
                    continue
            try:
                with process.oneshot():
                    figures[pid] = {
                        "cpu_percent": process.cpu_percent(None),
                        "rss_bytes": process.memory_info().rss,
                        "open_fds": _open_fds(process),
                        "threads": process.num_threads(),
                        "cpu_affinity": sorted(process.cpu_affinity()),
                    }
            except psutil.Error:
                self._processes.pop(pid, None)
        for gone in set(self._processes) - set(pids):
            del self._processes[gone]
        return figures


def _open_fds(process: psutil.Process) -> int | None:
    """The process's open files, or None when /proc/<pid>/fd is closed to this user: a worker is not
    dumpable (docs/security.md), so only root may list its descriptors."""
    try:
        return int(process.num_fds())
    except psutil.AccessDenied:
        return None
