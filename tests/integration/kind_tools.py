"""Resources, templates, prompts and completions of the integration tests, served from both runtimes.

With the marker file named by ``IT_EXTRA_KIND_MARKER`` present, the Trio worker also serves one more
prompt and one more resource: a restarted worker then announces a different catalog.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from shared import (
    ToolContext,
    completion_metadata,
    prompt_metadata,
    resource_metadata,
    tool_metadata,
)

PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
CRASH_MARKER = os.environ.get("IT_CRASH_MARKER", "/nonexistent")


@resource_metadata(uri="it://asyncio/text", mime_type="text/plain", runtime="asyncio")
async def asyncio_text(ctx: ToolContext) -> str:
    """Text read in the asyncio worker."""
    return f"text from {ctx.runtime}"


@resource_metadata(uri="it://trio/blob", mime_type="image/png", runtime="trio")
def trio_blob() -> bytes:
    """A PNG read in the Trio worker (a sync function, in a worker thread)."""
    return base64.b64decode(PNG_1X1)


@resource_metadata(uri_template="it://asyncio/users/{id}", mime_type="application/json", runtime="asyncio")
async def asyncio_user(id: int, ctx: ToolContext) -> dict[str, Any]:
    """A user by id, read in the asyncio worker (``id`` coerced to an int)."""
    return {"id": id, "runtime": ctx.runtime}


@resource_metadata(uri_template="it://trio/items/{item}", runtime="trio")
async def trio_item(item: str, ctx: ToolContext) -> str:
    """An item, read in the Trio worker."""
    return f"item {item} from {ctx.runtime}"


@resource_metadata(uri="it://asyncio/broken", runtime="asyncio")
async def asyncio_broken() -> str:
    """Always fails."""
    raise RuntimeError("the disk is on fire")


@resource_metadata(uri="it://asyncio/crash", runtime="asyncio")
def asyncio_crash() -> str:
    """Kills its worker while being read, once the crash marker file exists."""
    if os.path.exists(CRASH_MARKER):
        os._exit(9)
    return "alive"


@prompt_metadata(name="it_greet", runtime="asyncio")
def greet(name: str, ctx: ToolContext) -> str:
    """Greet someone (asyncio)."""
    return f"Hello {name}, from {ctx.runtime}"


@prompt_metadata(name="it_picture", runtime="trio")
async def picture(uri: str, ctx: ToolContext) -> list[Any]:
    """An image and an embedded resource (Trio)."""
    return [
        {"role": "user", "content": {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}},
        {
            "role": "assistant",
            "content": {
                "type": "resource",
                "resource": {"uri": uri, "mimeType": "text/plain", "text": f"embedded by {ctx.runtime}"},
            },
        },
    ]


@resource_metadata(uri="it://asyncio/roots", mime_type="text/plain", runtime="asyncio")
async def asyncio_roots(ctx: ToolContext) -> str:
    """The client's roots (roots/list): a resource read that needs the client's input."""
    roots = await ctx.list_roots()
    return ", ".join(root["uri"] for root in roots["roots"])


@prompt_metadata(name="it_ask", runtime="trio")
async def ask(topic: str, ctx: ToolContext) -> str:
    """Logs, then asks the client's LLM (Trio): the same context a tool has."""
    await ctx.log("info", f"asking about {topic}")
    answer = await ctx.sample(f"about {topic}", max_tokens=10)
    return f"the model says: {answer['content']['text']}"


@completion_metadata(prompt="it_greet", argument="name", runtime="asyncio")
def complete_name(value: str) -> list[str]:
    """Names that start with what was typed (asyncio)."""
    return [name for name in ("Ada", "Alan", "Grace") if name.lower().startswith(value.lower())]


@completion_metadata(resource_template="it://trio/items/{item}", argument="item", runtime="trio")
async def complete_item(value: str, context: dict[str, str], ctx: ToolContext) -> list[str]:
    """Items that start with what was typed (Trio), and which worker answered."""
    return [f"{value}-1", f"{value}-2", ctx.runtime]


@tool_metadata(runtime="trio")
async def it_touch(uri: str, ctx: ToolContext) -> str:
    """Publish that ``uri`` changed (from the Trio worker)."""
    await ctx.resource_updated(uri)
    return "touched"


if os.path.exists(os.environ.get("IT_EXTRA_KIND_MARKER", "/nonexistent")):

    @prompt_metadata(name="it_extra_prompt", runtime="trio")
    def extra_prompt() -> str:
        """Only there once the marker file exists."""
        return "extra"

    @resource_metadata(uri="it://trio/extra", runtime="trio")
    def extra_resource() -> str:
        """Only there once the marker file exists."""
        return "extra"
