"""The resources, resource templates, prompts and completions the official conformance suite reads, served
by real worker processes of both runtimes (see ``conformance_tools`` for the tools).

URIs, names and contents follow the suite's server scenarios (``resources-*``, ``prompts-*``,
``completion-complete``, ``caching``, ``sep-2164-resource-not-found``).
"""

from __future__ import annotations

import base64
import json

from pydantic import Field

from shared import completion_metadata, prompt_metadata, resource_metadata

from .conformance_tools import PNG_1X1

CITIES = ["paris", "park", "party", "test", "testing", "tested"]


@resource_metadata(uri="test://static-text", mime_type="text/plain", runtime="asyncio")
def static_text() -> str:
    """A static text resource."""
    return "This is the content of the static text resource."


@resource_metadata(uri="test://static-binary", mime_type="image/png", runtime="trio")
def static_binary() -> bytes:
    """A static binary resource (a 1x1 PNG)."""
    return base64.b64decode(PNG_1X1)


@resource_metadata(uri="test://watched-resource", mime_type="text/plain", runtime="asyncio")
def watched_resource() -> str:
    """A resource clients may subscribe to."""
    return "Watched resource content."


@resource_metadata(uri_template="test://template/{id}/data", mime_type="application/json", runtime="trio")
def template_data(id: str) -> str:
    """Data for one id."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@prompt_metadata(name="test_simple_prompt", runtime="asyncio")
def simple_prompt() -> str:
    """A simple prompt without arguments."""
    return "This is a simple prompt for testing."


@prompt_metadata(name="test_prompt_with_arguments", runtime="trio")
def prompt_with_arguments(
    arg1: str = Field(description="First test argument"),
    arg2: str = Field(description="Second test argument"),
) -> str:
    """A prompt with two required arguments."""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@prompt_metadata(name="test_prompt_with_embedded_resource", runtime="asyncio")
def prompt_with_embedded_resource(
    resourceUri: str = Field(description="URI of the resource to embed"),  # noqa: N803 (the suite's name)
) -> list[dict[str, object]]:
    """A prompt with an embedded resource."""
    return [
        {
            "role": "user",
            "content": {
                "type": "resource",
                "resource": {
                    "uri": resourceUri,
                    "mimeType": "text/plain",
                    "text": "Embedded resource content for testing.",
                },
            },
        },
        {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}},
    ]


@prompt_metadata(name="test_prompt_with_image", runtime="trio")
def prompt_with_image() -> list[dict[str, object]]:
    """A prompt with an image."""
    return [
        {"role": "user", "content": {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}},
        {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}},
    ]


@completion_metadata(prompt="test_prompt_with_arguments", argument="arg1", runtime="asyncio")
def complete_arg1(value: str) -> list[str]:
    """Suggestions for ``arg1`` that start with what was typed."""
    return [city for city in CITIES if city.startswith(value)]


@completion_metadata(resource_template="test://template/{id}/data", argument="id", runtime="trio")
def complete_template_id(value: str, context: dict[str, str]) -> list[str]:
    """Ids that start with what was typed."""
    return [id for id in ("123", "124", "200") if id.startswith(value)]
