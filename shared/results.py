"""Turning what a tool returned into an MCP ``CallToolResult`` (wire form, a plain dict).

- ``str`` → one text content block;
- ``dict`` or a pydantic model → ``structuredContent`` plus the same object as JSON text (a tool with an
  output schema has its value validated and dumped by ``ToolHost.result_frame`` first);
- an MCP content block (text, image, audio, embedded resource, resource link), or a list of them →
  ``content`` as given;
- an MCP ``CallToolResult`` → passed through;
- ``None`` → no content;
- anything else JSON can carry (numbers, lists, ...) → JSON text.

This module never imports the MCP SDK: workers stay small, and content objects are recognised by the
module they come from.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from pydantic import BaseModel

from .errors import CallError

CONTENT_TYPES = frozenset({"text", "image", "audio", "resource", "resource_link"})


def to_call_tool_result(value: Any) -> dict[str, Any]:
    """The ``CallToolResult`` for a tool's return value.

    Raises:
        TypeError: the value cannot be represented as JSON.
    """
    try:
        return _to_call_tool_result(value)
    except pydantic_core.PydanticSerializationError as exc:  # from inside a dict or a model
        raise TypeError(f"tool returned a value JSON cannot represent: {exc}") from None


def _to_call_tool_result(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"content": [{"type": "text", "text": value}], "isError": False}
    if value is None:
        return {"content": [], "isError": False}
    if isinstance(value, BaseModel):
        if _is_mcp_object(value):
            dumped = value.model_dump(by_alias=True, mode="json", exclude_none=True)
            if type(value).__name__ == "CallToolResult":
                dumped.setdefault("isError", False)
                return dumped
            if dumped.get("type") in CONTENT_TYPES:
                return {"content": [dumped], "isError": False}
        return _structured(value.model_dump(mode="json", by_alias=True))
    if isinstance(value, dict):
        return _structured(value)
    if isinstance(value, (list, tuple)) and value and all(_is_content(item) for item in value):
        return {
            "content": [item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in value],
            "isError": False,
        }
    return {"content": [{"type": "text", "text": _json_text(value)}], "isError": False}


def error_result(message: str) -> dict[str, Any]:
    """A tool execution error (``isError: true``) with a one-line message."""
    return {"content": [{"type": "text", "text": message}], "isError": True}


def call_error_result(exc: CallError) -> dict[str, Any] | None:
    """The answer to a call that failed with ``exc`` when it is a tool execution error: an ``isError``
    result with the error's message. None when ``exc`` is a protocol error (``exc.is_protocol_error``):
    answer with its JSON-RPC error object instead (``shared.errors.error_object(exc)``), as the MCP
    specification separates the two."""
    if exc.is_protocol_error:
        return None
    return error_result(str(exc))


def _structured(value: Any) -> dict[str, Any]:
    jsonable = pydantic_core.to_jsonable_python(value, inf_nan_mode="null")
    return {
        "content": [{"type": "text", "text": _json_text(jsonable)}],
        "structuredContent": jsonable,
        "isError": False,
    }


def _json_text(value: Any) -> str:
    try:
        return pydantic_core.to_json(value, inf_nan_mode="null").decode()
    except pydantic_core.PydanticSerializationError as exc:
        raise TypeError(f"tool returned a value JSON cannot represent: {exc}") from None


def _is_mcp_object(value: Any) -> bool:
    return type(value).__module__.split(".", 1)[0] in ("mcp_types", "mcp")


def _is_content(value: Any) -> bool:
    return (
        isinstance(value, BaseModel)
        and _is_mcp_object(value)
        and getattr(value, "type", None) in CONTENT_TYPES
    )
