"""Tests of shared/results.py: what a tool returns, turned into an MCP CallToolResult in wire form."""

from __future__ import annotations

import json
from typing import Any

import mcp_types
import pytest
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import (
    CallError,
    CallTimeoutError,
    InvalidArgumentsError,
    MissingCapabilityError,
    NoWorkerError,
    ServerBusyError,
    UnknownToolError,
    WorkerLostError,
)
from shared.results import call_error_result, error_result, to_call_tool_result


class Weather(BaseModel):
    city: str
    temperature_c: float = Field(alias="temperatureC")


class Opaque(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    thing: object


def text_of(result: dict[str, Any]) -> str:
    [block] = result["content"]
    assert block["type"] == "text"
    return str(block["text"])


def test_str_becomes_one_text_block() -> None:
    assert to_call_tool_result("hello") == {"content": [{"type": "text", "text": "hello"}], "isError": False}


def test_empty_str_is_still_a_text_block() -> None:
    assert to_call_tool_result("") == {"content": [{"type": "text", "text": ""}], "isError": False}


def test_none_becomes_no_content() -> None:
    assert to_call_tool_result(None) == {"content": [], "isError": False}


def test_dict_becomes_structured_content_and_the_same_json_text() -> None:
    value = {"city": "Oslo", "temps": [1, 2.5], "nested": {"ok": True, "none": None}}

    result = to_call_tool_result(value)

    assert result["isError"] is False
    assert result["structuredContent"] == value
    assert json.loads(text_of(result)) == value


def test_dict_with_python_only_values_is_made_json_safe() -> None:
    result = to_call_tool_result({"tags": ("a", "b")})

    assert result["structuredContent"] == {"tags": ["a", "b"]}
    assert json.loads(text_of(result)) == {"tags": ["a", "b"]}


def test_pydantic_model_becomes_structured_content_by_alias() -> None:
    result = to_call_tool_result(Weather(city="Oslo", temperatureC=-3.5))

    assert result["structuredContent"] == {"city": "Oslo", "temperatureC": -3.5}
    assert json.loads(text_of(result)) == {"city": "Oslo", "temperatureC": -3.5}
    assert result["isError"] is False


@pytest.mark.parametrize(
    ("value", "text"),
    [([1, "two", None], '[1,"two",null]'), (42, "42"), (2.5, "2.5"), (True, "true"), ([], "[]")],
)
def test_other_json_values_become_json_text_without_structured_content(value: Any, text: str) -> None:
    result = to_call_tool_result(value)

    assert result == {"content": [{"type": "text", "text": text}], "isError": False}


def test_mcp_text_content_is_passed_as_content() -> None:
    result = to_call_tool_result(mcp_types.TextContent(type="text", text="hi"))

    assert result == {"content": [{"type": "text", "text": "hi"}], "isError": False}


def test_mcp_image_content_is_passed_in_wire_form() -> None:
    result = to_call_tool_result(mcp_types.ImageContent(type="image", data="aGk=", mime_type="image/png"))

    assert result == {
        "content": [{"type": "image", "data": "aGk=", "mimeType": "image/png"}],
        "isError": False,
    }


@pytest.mark.parametrize("container", [list, tuple])
def test_sequence_of_mcp_content_blocks_is_passed_in_order(container: type) -> None:
    blocks = container(
        [
            mcp_types.TextContent(type="text", text="caption"),
            mcp_types.ImageContent(type="image", data="aGk=", mime_type="image/png"),
        ]
    )

    result = to_call_tool_result(blocks)

    assert result == {
        "content": [
            {"type": "text", "text": "caption"},
            {"type": "image", "data": "aGk=", "mimeType": "image/png"},
        ],
        "isError": False,
    }


def test_mcp_call_tool_result_passes_through() -> None:
    value = mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text="partial")],
        structured_content={"done": False},
        is_error=True,
    )

    result = to_call_tool_result(value)

    assert result["content"] == [{"type": "text", "text": "partial"}]
    assert result["structuredContent"] == {"done": False}
    assert result["isError"] is True


def test_mcp_call_tool_result_without_is_error_is_not_an_error() -> None:
    result = to_call_tool_result(mcp_types.CallToolResult(content=[]))

    assert result["content"] == []
    assert result["isError"] is False


@pytest.mark.parametrize(
    "value",
    [object(), [object()], b"\xff", {"key": object()}, Opaque(thing=object())],
    ids=["object", "list-of-object", "non-utf8-bytes", "dict-with-object", "model-with-object"],
)
def test_value_json_cannot_represent_raises_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="JSON cannot represent"):
        to_call_tool_result(value)


def test_error_result_shape() -> None:
    assert error_result("tool 'x' failed: ValueError: bad") == {
        "content": [{"type": "text", "text": "tool 'x' failed: ValueError: bad"}],
        "isError": True,
    }


@pytest.mark.parametrize(
    "error",
    [
        CallError("tool 'x' failed"),
        ServerBusyError("server busy: try again later"),
        NoWorkerError("runtime trio is unavailable: every trio worker is failing"),
        WorkerLostError("worker asyncio-0 (pid 7) killed by SIGKILL"),
        CallTimeoutError("tool 'x' did not answer within 1 s"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_tool_execution_error_is_answered_with_an_is_error_result(error: CallError) -> None:
    assert call_error_result(error) == error_result(str(error))


@pytest.mark.parametrize(
    "error",
    [
        UnknownToolError("unknown tool 'nope'"),
        MissingCapabilityError("needs sampling", {"requiredCapabilities": {"sampling": {}}}),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_protocol_error_has_no_result_and_is_answered_as_an_error(error: CallError) -> None:
    assert call_error_result(error) is None


def test_invalid_arguments_are_a_tool_execution_error_the_model_sees() -> None:
    """SEP-1303: bad arguments come back as an isError result naming the field, not as -32602."""
    error = InvalidArgumentsError("invalid arguments for tool 'echo': missing required argument 'message'")

    assert call_error_result(error) == {
        "content": [{"type": "text", "text": str(error)}],
        "isError": True,
    }
