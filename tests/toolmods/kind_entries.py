"""Entries of every kind but tools, for tests/shared/test_kinds.py (asyncio and Trio)."""

from __future__ import annotations

from typing import Any

from shared import ToolContext, completion_metadata, prompt_metadata, resource_metadata


@resource_metadata(uri="ut://text", mime_type="text/markdown", runtime="asyncio")
async def ut_text(ctx: ToolContext) -> str:
    """Some text."""
    ctx.resource_updated("ut://text")
    return "# hello"


@resource_metadata(uri="ut://blob", runtime="asyncio")
def ut_blob() -> bytes:
    return b"\x00\x01"


@resource_metadata(uri_template="ut://users/{id}", runtime="trio")
def ut_user(id: int) -> dict[str, Any]:
    """A user."""
    return {"id": id}


@resource_metadata(uri="ut://fails", runtime="asyncio")
def ut_fails() -> str:
    raise RuntimeError("no luck")


@prompt_metadata(name="ut_prompt", title="A prompt", runtime="asyncio")
def ut_prompt(topic: str, style: str = "plain") -> list[Any]:
    """Talk about a topic."""
    return [f"About {topic}", {"role": "assistant", "content": f"in a {style} style"}]


@completion_metadata(prompt="ut_prompt", argument="topic", runtime="asyncio")
def ut_topics(value: str) -> list[str]:
    return [topic for topic in ("cats", "cars", "dogs") if topic.startswith(value)]
