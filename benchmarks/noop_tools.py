"""No-op tools for ``benchmarks.hop``: the cheapest call each runtime can serve.

Loaded by the workers with ``--tools benchmarks.noop_tools``; the benchmark process itself never imports it.
"""

from __future__ import annotations

from shared.metadata import tool_metadata


@tool_metadata(runtime="asyncio", category="benchmark", read_only=True, idempotent=True, open_world=False)
async def noop_asyncio() -> str:
    """Return ``ok`` at once, on the asyncio worker."""
    return "ok"


@tool_metadata(runtime="trio", category="benchmark", read_only=True, idempotent=True, open_world=False)
async def noop_trio() -> str:
    """Return ``ok`` at once, on the Trio worker."""
    return "ok"


@tool_metadata(runtime="asyncio", category="benchmark", task_support="optional", idempotent=True)
async def noop_task() -> str:
    """Return ``ok`` at once, on the asyncio worker; a client that declared the tasks extension gets a
    task (for ``benchmarks.mcptasks``)."""
    return "ok"
