"""Tests of shared/schema.py: input schemas from type hints, argument validation and catalog entries."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from shared.context import ToolContext
from shared.errors import InvalidArgumentsError, ToolDefinitionError
from shared.metadata import ToolMetadata, ToolMetadataRegistry, tool_metadata
from shared.schema import ToolSpec, build_tool_spec


class Point(BaseModel):
    x: int
    y: int = 0


def spec_of(func: Any) -> ToolSpec:
    return build_tool_spec(func)


# -- input schema ----------------------------------------------------------------------------------


def test_schema_from_type_hints_separates_required_and_defaulted(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def search(query: str, limit: int = 10, exact: bool = False) -> list[str]:
        return []

    schema = spec_of(search).input_schema

    assert schema["type"] == "object"
    assert schema["required"] == ["query"]
    assert schema["properties"] == {
        "query": {"type": "string"},
        "limit": {"type": "integer", "default": 10},
        "exact": {"type": "boolean", "default": False},
    }
    assert "title" not in schema


def test_annotated_field_description_reaches_the_schema(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def echo(
        message: Annotated[str, Field(description="Text to send back")],
        times: Annotated[int, Field(ge=1, le=5, description="How often")] = 1,
    ) -> str:
        return message * times

    properties = spec_of(echo).input_schema["properties"]

    assert properties["message"] == {"type": "string", "description": "Text to send back"}
    assert properties["times"]["description"] == "How often"
    assert properties["times"]["minimum"] == 1
    assert properties["times"]["maximum"] == 5


def test_nested_pydantic_model_is_described_by_reference(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def move(to: Point) -> None:
        pass

    schema = spec_of(move).input_schema

    assert schema["properties"]["to"] == {"$ref": "#/$defs/Point"}
    assert schema["$defs"]["Point"]["properties"]["x"]["type"] == "integer"
    assert schema["$defs"]["Point"]["required"] == ["x"]
    assert schema["required"] == ["to"]


def test_context_parameter_is_injected_not_described(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def work(steps: int, ctx: ToolContext) -> None:
        pass

    spec = spec_of(work)

    assert spec.context_parameter == "ctx"
    assert set(spec.input_schema["properties"]) == {"steps"}
    assert spec.input_schema["required"] == ["steps"]


def test_context_parameter_may_be_annotated_and_named_freely(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="trio")
    async def work(context: Annotated[ToolContext, "injected"]) -> None:
        pass

    spec = spec_of(work)

    assert spec.context_parameter == "context"
    assert spec.input_schema["properties"] == {}


def test_optional_context_parameter_is_still_the_context(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry)
    async def maybe(x: int, ctx: ToolContext | None = None) -> int:
        return x

    spec = spec_of(maybe)
    assert spec.context_parameter == "ctx"
    assert list(spec.input_schema["properties"]) == ["x"]


def test_tool_without_context_has_no_context_parameter(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    def plain(x: int) -> int:
        return x

    assert spec_of(plain).context_parameter is None


def test_description_is_the_cleaned_docstring(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def documented() -> None:
        """First line.

        Second paragraph, indented in the source.
        """

    assert spec_of(documented).description == "First line.\n\nSecond paragraph, indented in the source."


def test_mcp_description_beats_the_docstring(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio", mcp_description="The real description")
    async def documented() -> None:
        """The docstring."""

    assert spec_of(documented).description == "The real description"


def test_missing_docstring_gives_empty_description(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def undocumented() -> None:
        pass

    assert spec_of(undocumented).description == ""


def test_mcp_schema_overrides_the_generated_schema(registry: ToolMetadataRegistry) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string", "minLength": 3}}, "required": ["q"]}

    @tool_metadata(registry=registry, runtime="asyncio", mcp_schema=schema)
    async def search(q: str) -> None:
        pass

    assert spec_of(search).input_schema == schema


def test_spec_records_name_runtime_and_kind(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(name="renamed", registry=registry, runtime="trio")
    async def async_tool() -> None:
        pass

    @tool_metadata(registry=registry, runtime="asyncio")
    def sync_tool() -> None:
        pass

    async_spec = spec_of(async_tool)
    sync_spec = spec_of(sync_tool)

    assert (async_spec.name, async_spec.runtime, async_spec.is_async) == ("renamed", "trio", True)
    assert (sync_spec.name, sync_spec.runtime, sync_spec.is_async) == ("sync_tool", "asyncio", False)
    assert async_spec.func is async_tool


def test_explicit_metadata_argument_beats_the_attribute(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def tool() -> None:
        pass

    spec = build_tool_spec(tool, ToolMetadata(name="other", runtime="trio"))

    assert (spec.name, spec.runtime) == ("other", "trio")


# -- functions that cannot become tools ------------------------------------------------------------


def test_var_positional_is_refused(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def variadic(*items: int) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match=r"'variadic'.*\*args and \*\*kwargs"):
        spec_of(variadic)


def test_var_keyword_is_refused(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def options(**extra: Any) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match=r"'options'.*\*args and \*\*kwargs"):
        spec_of(options)


def test_positional_only_parameter_is_refused_naming_it(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def positional(value: int, /) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match="positional-only parameter 'value'"):
        spec_of(positional)


def test_underscore_parameter_is_refused_naming_it(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def private(_secret: int) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match="parameter '_secret' must not start with '_'"):
        spec_of(private)


def test_unresolvable_type_hint_is_refused(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def broken(x: DoesNotExist) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ToolDefinitionError, match="cannot resolve type hints"):
        spec_of(broken)


# -- parse_arguments -------------------------------------------------------------------------------


@pytest.fixture
def search_spec(registry: ToolMetadataRegistry) -> ToolSpec:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def search(query: str, ctx: ToolContext, limit: int = 10) -> None:
        pass

    return spec_of(search)


def test_parse_arguments_coerces_and_fills_defaults(search_spec: ToolSpec) -> None:
    assert search_spec.parse_arguments({"query": "cats", "limit": "5"}) == {"query": "cats", "limit": 5}
    assert search_spec.parse_arguments({"query": "cats"}) == {"query": "cats", "limit": 10}


def test_parse_arguments_builds_nested_models(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def move(to: Point) -> None:
        pass

    kwargs = spec_of(move).parse_arguments({"to": {"x": "3"}})

    assert kwargs == {"to": Point(x=3, y=0)}


def test_parse_arguments_treats_none_as_no_arguments(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def defaults_only(limit: int = 3) -> None:
        pass

    assert spec_of(defaults_only).parse_arguments(None) == {"limit": 3}


def test_none_arguments_still_need_the_required_ones(search_spec: ToolSpec) -> None:
    with pytest.raises(InvalidArgumentsError, match="missing required argument 'query'"):
        search_spec.parse_arguments(None)


def one_line_error(spec: ToolSpec, arguments: Any) -> str:
    with pytest.raises(InvalidArgumentsError) as caught:
        spec.parse_arguments(arguments)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid arguments for tool {spec.name!r}: ")
    return message


def test_missing_argument_is_named(search_spec: ToolSpec) -> None:
    assert one_line_error(search_spec, {"limit": 1}).endswith("missing required argument 'query'")


def test_unknown_argument_is_named(search_spec: ToolSpec) -> None:
    assert one_line_error(search_spec, {"query": "q", "colour": "red"}).endswith("unknown argument 'colour'")


def test_wrong_type_is_named(search_spec: ToolSpec) -> None:
    message = one_line_error(search_spec, {"query": "q", "limit": "many"})

    assert "'limit': Input should be a valid integer" in message


def test_wrong_type_in_a_nested_model_names_the_path(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def move(to: Point) -> None:
        pass

    assert "'to.x': Input should be a valid integer" in one_line_error(spec_of(move), {"to": {"x": "left"}})


def test_every_problem_is_named_on_one_line(search_spec: ToolSpec) -> None:
    message = one_line_error(search_spec, {"limit": "many", "colour": "red"})

    assert "missing required argument 'query'" in message
    assert "'limit': Input should be a valid integer" in message
    assert "unknown argument 'colour'" in message


def test_the_context_parameter_cannot_be_passed_as_an_argument(search_spec: ToolSpec) -> None:
    assert one_line_error(search_spec, {"query": "q", "ctx": {}}).endswith("unknown argument 'ctx'")


@pytest.mark.parametrize("arguments", [["query"], "query=cats", 42])
def test_non_object_arguments_are_refused(search_spec: ToolSpec, arguments: Any) -> None:
    assert one_line_error(search_spec, arguments).endswith("arguments must be an object")


# -- a tool without arguments (validated without pydantic when none are given) ----------------------


@pytest.fixture
def bare_spec(registry: ToolMetadataRegistry) -> ToolSpec:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def ping(ctx: ToolContext) -> str:
        return "pong"

    return spec_of(ping)


@pytest.mark.parametrize("arguments", [None, {}])
def test_a_tool_without_arguments_accepts_none(bare_spec: ToolSpec, arguments: Any) -> None:
    assert bare_spec.argument_names == ()
    assert bare_spec.parse_arguments(arguments) == {}


def test_a_tool_without_arguments_refuses_one_with_pydantics_message(bare_spec: ToolSpec) -> None:
    with pytest.raises(InvalidArgumentsError) as refused:
        bare_spec.parse_arguments({"x": 1, "y": 2})
    assert str(refused.value) == (
        "invalid arguments for tool 'ping': unknown argument 'x'; unknown argument 'y'"
    )


@pytest.mark.parametrize("arguments", [[], "", 0, ["x"]])
def test_a_tool_without_arguments_refuses_non_objects(bare_spec: ToolSpec, arguments: Any) -> None:
    with pytest.raises(InvalidArgumentsError, match="arguments must be an object"):
        bare_spec.parse_arguments(arguments)


def test_argument_names_follow_the_signature(search_spec: ToolSpec) -> None:
    assert search_spec.argument_names == ("query", "limit")


# -- catalog_entry ---------------------------------------------------------------------------------


def test_catalog_entry_without_hints_has_no_annotations_or_title(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry, runtime="asyncio")
    async def plain(x: int) -> None:
        """Do a plain thing."""

    spec = spec_of(plain)
    entry = spec.catalog_entry()

    assert entry == {
        "name": "plain",
        "description": "Do a plain thing.",
        "inputSchema": spec.input_schema,
        "runtime": "asyncio",
        "metadata": spec.metadata.to_dict(),
    }


def test_catalog_entry_carries_title_and_stated_annotations(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(
        registry=registry, runtime="trio", title="Fancy", read_only=True, open_world=False, category="net"
    )
    async def fancy() -> None:
        """Fancy."""

    entry = spec_of(fancy).catalog_entry()

    assert entry["title"] == "Fancy"
    assert entry["annotations"] == {"title": "Fancy", "readOnlyHint": True, "openWorldHint": False}
    assert entry["runtime"] == "trio"
    assert entry["metadata"]["category"] == "net"
    assert entry["inputSchema"] == {"type": "object", "properties": {}, "additionalProperties": False}
