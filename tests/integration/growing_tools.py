"""Tools of the integration tests plus one more tool when the marker file named by
``IT_EXTRA_TOOL_MARKER`` exists: a restarted worker then announces a different catalog."""

from __future__ import annotations

import os

from shared import tool_metadata

from . import call_tools  # noqa: F401

if os.path.exists(os.environ.get("IT_EXTRA_TOOL_MARKER", "/nonexistent")):

    @tool_metadata(runtime="trio")
    async def it_extra() -> str:
        """Only there once the marker file exists."""
        return "extra"
