"""The tools the official MCP conformance suite calls, served by real worker processes of both runtimes.

Names, arguments and answers follow the suite's server scenarios (``@modelcontextprotocol/conformance``);
the values match its reference "everything" server where the suite compares them.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp_types import (
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
)

from shared import ToolContext, prompt_metadata, tool_metadata
from shared.errors import ClientRequestError, InputRequired

PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_HEADER = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="


@tool_metadata(runtime="asyncio")
async def test_simple_text() -> str:
    """Return a simple text response."""
    return "This is a simple text response for testing."


@tool_metadata(runtime="asyncio")
async def test_image_content() -> ImageContent:
    """Return a 1x1 PNG image."""
    return ImageContent(type="image", data=PNG_1X1, mime_type="image/png")


@tool_metadata(runtime="trio")
async def test_audio_content() -> AudioContent:
    """Return a tiny WAV file."""
    return AudioContent(type="audio", data=WAV_HEADER, mime_type="audio/wav")


@tool_metadata(runtime="trio")
async def test_embedded_resource() -> EmbeddedResource:
    """Return an embedded text resource."""
    return EmbeddedResource(
        type="resource",
        resource=TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        ),
    )


@tool_metadata(runtime="asyncio")
async def test_multiple_content_types() -> list[Any]:
    """Return text, an image and an embedded resource in one result."""
    return [
        TextContent(type="text", text="Multiple content types test:"),
        ImageContent(type="image", data=PNG_1X1, mime_type="image/png"),
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://mixed-content-resource",
                mime_type="application/json",
                text=json.dumps({"test": "data", "value": 123}),
            ),
        ),
    ]


@tool_metadata(runtime="trio")
async def test_tool_with_logging(ctx: ToolContext) -> str:
    """Send three log messages while running."""
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.log("info", message)
        await anyio.sleep(0.05)
    return "Tool with logging executed successfully"


@tool_metadata(runtime="asyncio")
async def test_error_handling() -> CallToolResult:
    """Always answer with a tool error."""
    return CallToolResult(
        content=[TextContent(type="text", text="This tool intentionally returns an error for testing")],
        is_error=True,
    )


@tool_metadata(runtime="trio")
async def test_tool_with_progress(ctx: ToolContext) -> str:
    """Report progress 0, 50 and 100 of 100, then return the progress token."""
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"Completed step {step} of 100")
        await anyio.sleep(0.05)
    return str(ctx.progress_token)


@tool_metadata(runtime="asyncio")
async def test_sampling(prompt: str, ctx: ToolContext) -> str:
    """Ask the client's LLM to answer the prompt."""
    result = await ctx.sample(prompt, max_tokens=100)
    content = result.get("content", {})
    text = content.get("text", "") if isinstance(content, dict) else ""
    return f"LLM response: {text}"


@tool_metadata(runtime="trio")
async def test_elicitation(message: str, ctx: ToolContext) -> str:
    """Ask the user for a username and an email address."""
    result = await ctx.elicit(
        message,
        {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        },
    )
    return f"User response: action={result['action']}, content={json.dumps(result.get('content'))}"


@tool_metadata(runtime="asyncio")
async def test_elicitation_sep1034_defaults(ctx: ToolContext) -> str:
    """Ask for a form whose fields all have defaults (SEP-1034)."""
    result = await ctx.elicit(
        "Please review and update the form fields with defaults",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": True},
            },
            "required": [],
        },
    )
    return f"Elicitation completed: action={result['action']}, content={json.dumps(result.get('content'))}"


@tool_metadata(runtime="trio")
async def test_elicitation_sep1330_enums(ctx: ToolContext) -> str:
    """Ask for every kind of enum field (SEP-1330)."""
    result = await ctx.elicit(
        "Please select options from the enum fields",
        {
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Choose an option",
                    "enum": ["option1", "option2", "option3"],
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Choose a titled option",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Choose a legacy option",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Choose multiple options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Choose multiple titled options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
            "required": [],
        },
    )
    return f"Elicitation completed: action={result['action']}, content={json.dumps(result.get('content'))}"


@tool_metadata(
    runtime="asyncio",
    mcp_schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "address",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            }
        },
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False,
        # composition and conditional keywords (SEP-2106), chosen to accept every call the tool accepts
        "allOf": [{"anyOf": [{"required": ["name"]}, {"not": {"required": ["name"]}}]}],
        "if": {"required": ["address"]},
        "then": {"properties": {"address": {"type": "object"}}},
        "else": {},
    },
)
async def json_schema_2020_12_tool(name: str | None = None, address: dict[str, str] | None = None) -> str:
    """A tool whose input schema uses JSON Schema 2020-12 keywords ($schema, $defs, $ref, $anchor, allOf,
    anyOf, if/then/else)."""
    return f"name={name}, address={json.dumps(address)}"


@tool_metadata(
    runtime="trio",
    mcp_schema={
        "type": "object",
        "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
        "required": ["region"],
    },
)
async def test_custom_header(region: str) -> str:
    """A tool whose ``region`` argument is mirrored in an ``Mcp-Param-Region`` header (SEP-2243)."""
    return f"region={region}"


# Diagnostic tools of the 2026-07-28 stateless scenario (SEP-2575).


@tool_metadata(runtime="asyncio")
async def test_logging_tool(ctx: ToolContext) -> str:
    """Log at every level; a client that did not opt in with ``_meta`` logLevel must see none of it."""
    for level in ("debug", "info", "warning", "error"):
        await ctx.log(level, f"a {level} entry from test_logging_tool")
    return "logged four entries"


@tool_metadata(runtime="trio")
async def test_streaming_elicitation(ctx: ToolContext) -> str:
    """Ask the user something; in the stateless era no request may appear on the response stream."""
    await ctx.report_progress(1, 2, "asking")
    try:
        result = await ctx.elicit(
            "Your name?", {"type": "object", "properties": {"name": {"type": "string"}}}
        )
    except InputRequired:
        raise  # 2026-07-28: the answer comes with the client's retry
    except ClientRequestError as exc:
        return f"elicitation is not available here: {exc}"
    return f"elicitation answered: {json.dumps(result)}"


@tool_metadata(runtime="asyncio")
async def test_missing_capability(ctx: ToolContext) -> str:
    """Needs sampling: a client that did not declare it gets MissingRequiredClientCapabilityError."""
    answer = await ctx.sample("Say hello.", max_tokens=10)
    return json.dumps(answer)


_added = iter(range(1, 1_000_000))


@tool_metadata(runtime="asyncio")
async def test_trigger_tool_change(ctx: ToolContext) -> str:
    """Add a tool to this worker at run time and announce it (the suite's list-change diagnostic hook)."""
    name = f"test_added_tool_{next(_added)}"

    async def added() -> str:
        """A tool added at run time by test_trigger_tool_change."""
        return "added at run time"

    added.__name__ = added.__qualname__ = name
    tool_metadata(runtime="asyncio")(added)
    ctx.announce_catalog()
    return f"added {name}"


@tool_metadata(runtime="asyncio")
async def test_trigger_prompt_change(ctx: ToolContext) -> str:
    """Add a prompt to this worker at run time and announce it (the suite's list-change diagnostic hook)."""
    name = f"test_added_prompt_{next(_added)}"

    def added() -> str:
        """A prompt added at run time by test_trigger_prompt_change."""
        return "added at run time"

    added.__name__ = added.__qualname__ = name
    prompt_metadata(name=name, runtime="asyncio")(added)
    ctx.announce_catalog()
    return f"added {name}"
