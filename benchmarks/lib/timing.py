"""Timed loops, and the rotating order that spreads a noisy machine's load over everything measured.

Every duration comes from ``time.perf_counter_ns``. Each loop also stops after a time ``budget`` (s), so a
run stays bounded on a slow machine; the caller sees how many calls were made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def rotations(items: Sequence[T], rounds: int) -> Iterator[list[T]]:
    """``items`` once per round, each round starting one further on: load that comes and goes on the
    machine then weighs on every item alike, not on whichever is measured first."""
    for index in range(rounds):
        shift = index % len(items)
        yield [*items[shift:], *items[:shift]]


def share(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` split into ``parts`` near-equal whole parts (the first ones larger)."""
    return total // parts + (index < total % parts)


async def sequential(op: Callable[[], Awaitable[object]], count: int, budget: float) -> list[float]:
    """Durations (ns) of up to ``count`` sequential awaits of ``op()``, stopping after ``budget`` s."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    stop_at = clock() + int(budget * 1e9)
    for _ in range(count):
        start = clock()
        await op()
        end = clock()
        samples.append(end - start)
        if end > stop_at:
            break
    return samples


async def concurrent_callers(
    op: Callable[[], Awaitable[object]], count: int, concurrency: int, budget: float
) -> tuple[int, float]:
    """``concurrency`` tasks awaiting ``op()`` back to back until ``count`` calls (or ``budget`` s) are done;
    returns the calls made and the seconds taken."""
    remaining = count
    done = 0
    stop_at = time.perf_counter_ns() + int(budget * 1e9)

    async def caller() -> None:
        nonlocal remaining, done
        while remaining > 0 and time.perf_counter_ns() < stop_at:
            remaining -= 1
            await op()
            done += 1

    start = time.perf_counter_ns()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done, (time.perf_counter_ns() - start) / 1e9


async def window(
    send_one: Callable[[], None],
    receive_one: Callable[[], Awaitable[object]],
    count: int,
    concurrency: int,
    budget: float,
) -> tuple[int, float]:
    """Keep ``concurrency`` requests in flight on one socket until ``count`` answers (or ``budget`` s);
    returns the answers received and the seconds taken."""
    start = time.perf_counter_ns()
    stop_at = start + int(budget * 1e9)
    sent = received = 0
    while sent < min(concurrency, count):
        send_one()
        sent += 1
    while received < sent:
        await receive_one()
        received += 1
        if sent < count and time.perf_counter_ns() < stop_at:
            send_one()
            sent += 1
    return received, (time.perf_counter_ns() - start) / 1e9
