"""Sync tools for the thread-saturation test (``--tools tests.integration.stubborn_tools``): one that ignores
its cancellation and holds its thread until a file appears, and one that answers at once."""

from __future__ import annotations

import os
import time
from typing import Any

from shared import tool_metadata


@tool_metadata(runtime="asyncio", timeout_seconds=1)
def it_stubborn(release_file: str) -> str:
    """Ignore ctx.cancelled: hold the thread until ``release_file`` exists (at most 60 s)."""
    deadline = time.monotonic() + 60
    while not os.path.exists(release_file) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@tool_metadata(runtime="asyncio", timeout_seconds=5)
def it_quick_sync() -> dict[str, Any]:
    """A sync tool that answers at once with the pid of its worker."""
    return {"pid": os.getpid()}
