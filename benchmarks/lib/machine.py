"""The machine a benchmark runs on, and the CPU time and memory of the processes on it.

The machine is shared and noisy: every report says what it ran on and how much of the machine's CPU
time other processes took meanwhile (``others_share``), so that a reader knows how far to trust it.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import resource
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import psutil

_IDLE = ("idle", "iowait", "guest", "guest_nice")  # guest time is already counted in user time


class CpuSnapshot(NamedTuple):
    """What ``others_share`` compares: the CPU time of the machine and of this run at one moment."""

    busy: float
    """Busy CPU seconds of the whole machine since boot."""
    ours: float
    """CPU seconds of this process and of its reaped children."""
    wall: float
    """``time.monotonic()``."""


def cpu_snapshot() -> CpuSnapshot:
    times = psutil.cpu_times()
    busy = sum(value for name, value in times._asdict().items() if name not in _IDLE)
    return CpuSnapshot(busy, own_cpu_seconds() + reaped_children_cpu_seconds(), time.monotonic())


def others_share(start: CpuSnapshot) -> float:
    """Share of the machine's CPU time used by processes other than this run since ``start`` (0 on a quiet
    machine); this run's children count as this run once reaped. NaN when no time has passed."""
    now = cpu_snapshot()
    capacity = (now.wall - start.wall) * (os.cpu_count() or 1)
    if capacity <= 0:
        return math.nan
    return max(0.0, (now.busy - start.busy) - (now.ours - start.ours)) / capacity


def own_cpu_seconds() -> float:
    """CPU time (user + system, all threads) of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reaped_children_cpu_seconds() -> float:
    """CPU time of this process's children that have exited and been waited for (``wrk`` after a run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of process ``pid``; NaN when it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return math.nan
    return float(times.user + times.system)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (10⁶ bytes, the unit of the issue's targets)."""
    return float(psutil.Process(pid).memory_info().rss) / 1e6


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpus() -> str:
    """``2 logical CPUs (2 usable), <model>``: the CPUs, and how many of them this process may use."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count() or 0
    return f"{os.cpu_count()} logical CPUs ({usable} usable), {cpu_model()}"


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each distribution, or ``not installed``."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def operating_system() -> str:
    """``Linux-6.1.0-x86_64-with-glibc2.36``."""
    return platform.platform()


def python_version() -> str:
    """``3.11.7 (CPython)``."""
    return f"{platform.python_version()} ({platform.python_implementation()})"
