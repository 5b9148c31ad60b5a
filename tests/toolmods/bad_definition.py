"""Tools that import fine but cannot become tools."""

from __future__ import annotations

from shared.metadata import tool_metadata


@tool_metadata(runtime="asyncio")
async def ut_varargs(*items: int) -> None:
    """``*args`` cannot be described by a schema."""


class Unschemable:
    """A plain class: pydantic cannot describe it, and its error spans several lines."""


@tool_metadata(runtime="asyncio")
async def ut_unschemable(x: Unschemable) -> None:
    """A parameter of a type no JSON schema can describe."""
