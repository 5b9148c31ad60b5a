"""Tools of the authorization tests (``--tools tests.integration.auth_tools``)."""

from __future__ import annotations

from typing import Any

from shared import ToolContext, resource_metadata, tool_metadata


@tool_metadata(runtime="asyncio")
async def whoami(ctx: ToolContext) -> dict[str, Any]:
    """The caller's principal as the tool sees it (``None`` without authorization)."""
    principal = ctx.principal
    if principal is None:
        return {"principal": None}
    return {"principal": {"subject": principal.subject, "scopes": sorted(principal.scopes)}}


@tool_metadata(runtime="asyncio", scopes=["tools:secret"])
async def secret() -> str:
    """Only for callers holding tools:secret."""
    return "the secret"


@tool_metadata(runtime="asyncio", task_support="required")
async def whoami_task(ctx: ToolContext) -> dict[str, Any]:
    """``whoami`` as an MCP task: a task's run sees the principal that created the task."""
    return await whoami(ctx)


@resource_metadata(uri_template="secret://{name}", runtime="asyncio", scopes=["tools:secret"])
def secret_note(name: str) -> str:
    """A note only callers holding tools:secret may read, through a template."""
    return f"the note {name}"
