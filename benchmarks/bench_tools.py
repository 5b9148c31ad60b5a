"""The tools of ``python -m benchmarks`` besides the no-ops of ``benchmarks.noop_tools``.

Loaded by the supervisor's workers with ``--tools benchmarks.bench_tools``; the single-process baseline
(``benchmarks.sdk_server``) serves the same functions under the same names, so both servers run exactly
the same code per call.

- ``spin_*``: a fixed amount of pure-Python CPU work (``spin_loop``), for the CPU-scaling benchmark.
- ``block_*``: ``time.sleep`` inside an ``async def``: blocks its event loop, for the isolation benchmark.
- ``work_*``: an ``await``-ed sleep, neither read-only nor idempotent (so the supervisor answers a call it
  held when the worker dies instead of sending it again), for the recovery benchmark.
"""

from __future__ import annotations

import asyncio
import time

import trio

from shared.metadata import tool_metadata

SPIN_DEFAULT = 200_000
"""Iterations of ``spin_loop`` per call when the caller does not say (about 10 ms of CPython)."""


def spin_loop(iterations: int) -> int:
    """Fixed pure-Python CPU work: an integer recurrence the interpreter cannot skip."""
    value = 0
    for i in range(iterations):
        value = (value * 31 + i) & 0xFFFFFFFF
    return value


@tool_metadata(runtime="asyncio", category="benchmark", open_world=False)
async def spin_asyncio(iterations: int = SPIN_DEFAULT) -> str:
    """Burn CPU in the asyncio worker's event loop thread."""
    return str(spin_loop(iterations))


@tool_metadata(runtime="trio", category="benchmark", open_world=False)
async def spin_trio(iterations: int = SPIN_DEFAULT) -> str:
    """Burn CPU in the Trio worker's event loop thread."""
    return str(spin_loop(iterations))


@tool_metadata(runtime="asyncio", category="benchmark", open_world=False)
async def block_asyncio(seconds: float = 1.0) -> str:
    """Block the asyncio worker's event loop (``time.sleep`` in an ``async def``)."""
    time.sleep(seconds)
    return "blocked"


@tool_metadata(runtime="trio", category="benchmark", open_world=False)
async def block_trio(seconds: float = 1.0) -> str:
    """Block the Trio worker's event loop (``time.sleep`` in an ``async def``)."""
    time.sleep(seconds)
    return "blocked"


@tool_metadata(runtime="asyncio", category="benchmark", open_world=False)
async def work_asyncio(seconds: float = 0.2) -> str:
    """Wait without blocking, on the asyncio worker; not retried when its worker dies."""
    await asyncio.sleep(seconds)
    return "done"


@tool_metadata(runtime="trio", category="benchmark", open_world=False)
async def work_trio(seconds: float = 0.2) -> str:
    """Wait without blocking, on the Trio worker; not retried when its worker dies."""
    await trio.sleep(seconds)
    return "done"
