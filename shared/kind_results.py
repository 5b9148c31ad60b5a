"""Turning what a resource, prompt or completion function returned into its MCP result (wire form).

The rules are those of the ``mcp`` SDK's ``MCPServer`` (``FunctionResource.read``, ``Prompt.render``),
so a module moved from it renders alike:

- a resource: ``str`` → one text contents (``mimeType`` the declared one, else ``text/plain``); ``bytes``
  → one blob, base64-encoded (else ``application/octet-stream``); MCP resource contents (or a list of
  them, or a ``ReadResourceResult``) → as given; anything else → its JSON (indented) as text. The
  contents carry no ``uri``: the front sets the URI the client asked for.
- a prompt: one item or a list; each ``str`` or MCP content block becomes a user message, a dict or an
  MCP ``PromptMessage`` (or any object with ``role`` and ``content``) is a message; anything else becomes
  its JSON as a user text message. A ``GetPromptResult`` passes through.
- a completion: a list of strings → ``values`` (the first 100), ``total`` and ``hasMore``; a dict or an
  MCP ``Completion`` → as given; ``None`` → no values.
- an internal ``tasks`` entry: its dict, unchanged.

Like ``shared.results``, this module never imports the MCP SDK.
"""

from __future__ import annotations

import base64
from typing import Any

import pydantic_core
from pydantic import BaseModel

from .results import CONTENT_TYPES

MAX_COMPLETION_VALUES = 100
"""The specification's limit on the values of one completion result."""


def to_kind_result(kind: str, value: Any, listing: dict[str, Any] | None) -> dict[str, Any]:
    """The result of a call of ``kind`` (not a tool) that returned ``value``.

    Raises:
        TypeError: the value cannot be represented (not JSON, not a message, ...).
        ValueError: a message is not ``{"role": "user" | "assistant", "content": {...}}``.
    """
    try:
        if kind == "tasks":  # internal: the entry's dict is the answer
            if not isinstance(value, dict):
                raise TypeError(f"a tasks entry must return a dict, not {type(value).__name__}")
            return value
        if kind in ("resource", "resource_template"):
            return to_read_resource_result(value, (listing or {}).get("mimeType"))
        if kind == "prompt":
            return to_get_prompt_result(value, (listing or {}).get("description"))
        return to_complete_result(value)
    except pydantic_core.PydanticSerializationError as exc:
        raise TypeError(f"returned a value JSON cannot represent: {exc}") from None


def to_read_resource_result(value: Any, mime_type: str | None) -> dict[str, Any]:
    """The ``ReadResourceResult`` for a resource function's return value (``uri`` left to the front)."""
    if _mcp_name(value) == "ReadResourceResult":
        return _dump(value)  # type: ignore[no-any-return]
    if isinstance(value, (list, tuple)) and value and all(_is_contents(item) for item in value):
        return {"contents": [_dump(item) for item in value]}
    if _is_contents(value):
        return {"contents": [_dump(value)]}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {
            "contents": [
                {
                    "mimeType": mime_type or "application/octet-stream",
                    "blob": base64.b64encode(bytes(value)).decode(),
                }
            ]
        }
    if not isinstance(value, str):
        value = pydantic_core.to_json(value, fallback=str, indent=2).decode()
    return {"contents": [{"mimeType": mime_type or "text/plain", "text": value}]}


def to_get_prompt_result(value: Any, description: str | None) -> dict[str, Any]:
    """The ``GetPromptResult`` for a prompt function's return value."""
    if _mcp_name(value) == "GetPromptResult":
        return _dump(value)  # type: ignore[no-any-return]
    items = value if isinstance(value, (list, tuple)) else [value]
    result: dict[str, Any] = {"messages": [_message(item) for item in items]}
    if description:
        result["description"] = description
    return result


def to_complete_result(value: Any) -> dict[str, Any]:
    """The ``CompleteResult`` for a completion function's return value."""
    if value is None:
        return {"completion": {"values": []}}
    if isinstance(value, BaseModel):
        value = _dump(value)
    if isinstance(value, dict):
        completion = value.get("completion", value)
        if not isinstance(completion, dict) or not isinstance(completion.get("values"), list):
            raise TypeError("a completion must be a list of strings or a dict with 'values'")
        return {"completion": completion}
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        values = list(value)
        return {
            "completion": {
                "values": values[:MAX_COMPLETION_VALUES],
                "total": len(values),
                "hasMore": len(values) > MAX_COMPLETION_VALUES,
            }
        }
    raise TypeError(f"a completion must be a list of strings, not {type(value).__name__}")


def _message(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"role": "user", "content": {"type": "text", "text": item}}
    if isinstance(item, BaseModel):
        dumped = _dump(item)
        if dumped.get("type") in CONTENT_TYPES:
            return {"role": "user", "content": dumped}
        item = dumped
    if isinstance(item, dict):
        role, content = item.get("role"), item.get("content")
        if role not in ("user", "assistant"):
            raise ValueError(f"a prompt message needs role 'user' or 'assistant', not {role!r}")
        if isinstance(content, str):
            content = {"type": "text", "text": content}
        elif isinstance(content, BaseModel):
            content = _dump(content)
        if not isinstance(content, dict) or content.get("type") not in CONTENT_TYPES:
            raise ValueError("a prompt message's content must be a text, image, audio or resource block")
        return {**item, "role": role, "content": content}
    text = pydantic_core.to_json(item, fallback=str, indent=2).decode()
    return {"role": "user", "content": {"type": "text", "text": text}}


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, mode="json", exclude_none=True)
    return value


def _mcp_name(value: Any) -> str | None:
    if isinstance(value, BaseModel) and type(value).__module__.split(".", 1)[0] in ("mcp_types", "mcp"):
        return type(value).__name__
    return None


def _is_contents(value: Any) -> bool:
    return _mcp_name(value) in ("TextResourceContents", "BlobResourceContents")
