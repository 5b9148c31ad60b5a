"""Tests of shared/metadata.py: ToolMetadata validation, the registry and the @tool_metadata decorator."""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.errors import ToolDefinitionError
from shared.metadata import (
    METADATA_ATTRIBUTE,
    ToolMetadata,
    ToolMetadataRegistry,
    get_registry,
    tool_metadata,
)

# -- ToolMetadata ----------------------------------------------------------------------------------


def test_defaults_are_valid() -> None:
    metadata = ToolMetadata(name="echo")

    assert metadata.runtime == "auto"
    assert metadata.priority == 5
    assert metadata.timeout_seconds is None  # the server's request_timeout (issue 17)
    assert metadata.retry_policy == "none"
    assert metadata.max_concurrency is None


@pytest.mark.parametrize("name", ["a", "echo", "tool.v2", "my-tool_3", "x" * 128])
def test_valid_names_are_accepted(name: str) -> None:
    assert ToolMetadata(name=name).name == name


@pytest.mark.parametrize("name", ["", "x" * 129, "has space", "slash/name", "semi;colon", "ümlaut?"])
def test_invalid_name_is_refused_naming_it(name: str) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        ToolMetadata(name=name)

    assert repr(name) in str(caught.value)


def test_non_string_name_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="tool name 42 is invalid"):
        ToolMetadata(name=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("runtime", ["asyncio", "trio", "auto"])
def test_valid_runtimes_are_accepted(runtime: Any) -> None:
    assert ToolMetadata(name="t", runtime=runtime).runtime == runtime


def test_requires_p2p_on_asyncio_is_refused_as_a_contradiction() -> None:
    with pytest.raises(ToolDefinitionError, match=r"tool 'x': requires_p2p=True needs the Trio runtime"):
        ToolMetadata(name="x", runtime="asyncio", requires_p2p=True)
    assert ToolMetadata(name="x", runtime="trio", requires_p2p=True).requires_p2p


@pytest.mark.parametrize("runtime", ["gevent", "Trio", "", None])
def test_invalid_runtime_is_refused_naming_field_and_value(runtime: Any) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        ToolMetadata(name="t", runtime=runtime)

    assert f"runtime={runtime!r}" in str(caught.value)
    assert "'t'" in str(caught.value)


@pytest.mark.parametrize("priority", [0, 10])
def test_priority_bounds_are_inclusive(priority: int) -> None:
    assert ToolMetadata(name="t", priority=priority).priority == priority


@pytest.mark.parametrize("priority", [-1, 11, 5.0, "5", True, False, None])
def test_invalid_priority_is_refused_naming_field_and_value(priority: Any) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        ToolMetadata(name="t", priority=priority)

    assert f"priority={priority!r}" in str(caught.value)


@pytest.mark.parametrize("timeout", [0.001, 1, 30.0, None])
def test_valid_timeouts_are_accepted(timeout: float | None) -> None:
    assert ToolMetadata(name="t", timeout_seconds=timeout).timeout_seconds == timeout


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, float("nan"), True, "30"])
def test_invalid_timeout_is_refused_naming_field_and_value(timeout: Any) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        ToolMetadata(name="t", timeout_seconds=timeout)

    assert f"timeout_seconds={timeout!r}" in str(caught.value)


@pytest.mark.parametrize("policy", ["none", "exponential", "linear"])
def test_valid_retry_policies_are_accepted(policy: Any) -> None:
    assert ToolMetadata(name="t", retry_policy=policy).retry_policy == policy


@pytest.mark.parametrize("policy", ["always", "", None])
def test_invalid_retry_policy_is_refused_naming_field_and_value(policy: Any) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        ToolMetadata(name="t", retry_policy=policy)

    assert f"retry_policy={policy!r}" in str(caught.value)


@pytest.mark.parametrize("limit", [1, 64, None])
def test_valid_max_concurrency_is_accepted(limit: int | None) -> None:
    assert ToolMetadata(name="t", max_concurrency=limit).max_concurrency == limit


@pytest.mark.parametrize("limit", [0, -3, 2.0, True, "4"])
def test_invalid_max_concurrency_is_refused_naming_field_and_value(limit: Any) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        ToolMetadata(name="t", max_concurrency=limit)

    assert f"max_concurrency={limit!r}" in str(caught.value)


def test_object_mcp_schema_is_accepted() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}

    assert ToolMetadata(name="t", mcp_schema=schema).mcp_schema == schema


@pytest.mark.parametrize(
    "schema", [{"type": "string"}, {"properties": {}}, [], "object", {"type": ["object"]}]
)
def test_mcp_schema_that_is_not_an_object_schema_is_refused(schema: Any) -> None:
    with pytest.raises(ToolDefinitionError, match="mcp_schema"):
        ToolMetadata(name="t", mcp_schema=schema)


def test_annotations_are_empty_when_no_hint_is_stated() -> None:
    assert ToolMetadata(name="t").annotations() == {}


def test_annotations_include_only_stated_hints() -> None:
    metadata = ToolMetadata(name="t", title="Nice title", read_only=True, destructive=False)

    assert metadata.annotations() == {
        "title": "Nice title",
        "readOnlyHint": True,
        "destructiveHint": False,
    }


def test_annotations_map_every_hint_to_its_mcp_key() -> None:
    metadata = ToolMetadata(name="t", read_only=False, idempotent=True, destructive=True, open_world=False)

    assert metadata.annotations() == {
        "readOnlyHint": False,
        "idempotentHint": True,
        "destructiveHint": True,
        "openWorldHint": False,
    }


@pytest.mark.parametrize(
    ("read_only", "idempotent", "expected"),
    [
        (None, None, False),
        (False, False, False),
        (True, None, True),
        (None, True, True),
        (True, True, True),
    ],
)
def test_retry_safe_only_for_read_only_or_idempotent_tools(
    read_only: bool | None, idempotent: bool | None, expected: bool
) -> None:
    assert ToolMetadata(name="t", read_only=read_only, idempotent=idempotent).retry_safe is expected


def test_to_dict_holds_every_field_as_plain_json_data() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    metadata = ToolMetadata(name="t", runtime="trio", category="net", priority=9, mcp_schema=schema)

    data = metadata.to_dict()

    assert set(data) == set(ToolMetadata.__dataclass_fields__)
    assert data["name"] == "t"
    assert data["runtime"] == "trio"
    assert data["category"] == "net"
    assert data["priority"] == 9
    assert data["mcp_schema"] == schema
    assert json.loads(json.dumps(data)) == data


def test_metadata_is_immutable() -> None:
    metadata = ToolMetadata(name="t")

    with pytest.raises(AttributeError):
        metadata.priority = 1  # type: ignore[misc]


# -- ToolMetadataRegistry ----------------------------------------------------------------------------


def first_tool() -> None:
    """A module-level function: its qualified name is test_metadata.first_tool."""


def second_tool() -> None:
    """Another function with a different qualified name."""


def test_register_then_get_and_get_function(registry: ToolMetadataRegistry) -> None:
    metadata = ToolMetadata(name="first")

    registry.register(metadata, first_tool)

    assert registry.get("first") is metadata
    assert registry.get_function("first") is first_tool


def test_register_without_function_records_only_metadata(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="bare"))

    assert registry.get("bare") is not None
    assert registry.get_function("bare") is None


def test_unknown_name_gives_none(registry: ToolMetadataRegistry) -> None:
    assert registry.get("nope") is None
    assert registry.get_function("nope") is None


def test_list_all_is_sorted_by_name(registry: ToolMetadataRegistry) -> None:
    for name in ["mango", "apple", "zucchini", "banana"]:
        registry.register(ToolMetadata(name=name))

    assert [m.name for m in registry.list_all()] == ["apple", "banana", "mango", "zucchini"]


def test_get_by_runtime_returns_explicit_runtime_only(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="b_trio", runtime="trio"))
    registry.register(ToolMetadata(name="a_trio", runtime="trio"))
    registry.register(ToolMetadata(name="io", runtime="asyncio"))
    registry.register(ToolMetadata(name="p2p_auto", runtime="auto"))

    assert [m.name for m in registry.get_by_runtime("trio")] == ["a_trio", "b_trio"]
    assert [m.name for m in registry.get_by_runtime("asyncio")] == ["io"]
    assert [m.name for m in registry.get_by_runtime("auto")] == ["p2p_auto"]


def test_get_by_category(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="z", category="net"))
    registry.register(ToolMetadata(name="a", category="net"))
    registry.register(ToolMetadata(name="m"))

    assert [m.name for m in registry.get_by_category("net")] == ["a", "z"]
    assert [m.name for m in registry.get_by_category("general")] == ["m"]
    assert registry.get_by_category("nothing") == []


def test_unregister_removes_metadata_and_function(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="first"), first_tool)

    registry.unregister("first")

    assert registry.get("first") is None
    assert registry.get_function("first") is None
    assert "first" not in registry


def test_unregister_unknown_name_is_a_no_op(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="kept"))

    registry.unregister("never-registered")

    assert len(registry) == 1


def test_clear_forgets_everything(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="first"), first_tool)
    registry.register(ToolMetadata(name="second"), second_tool)

    registry.clear()

    assert len(registry) == 0
    assert registry.list_all() == []
    assert registry.get_function("first") is None


def test_contains_and_len(registry: ToolMetadataRegistry) -> None:
    assert len(registry) == 0
    assert "first" not in registry

    registry.register(ToolMetadata(name="first"), first_tool)
    registry.register(ToolMetadata(name="second"))

    assert len(registry) == 2
    assert "first" in registry
    assert "second" in registry
    assert "third" not in registry
    assert 42 not in registry


def test_same_name_for_a_different_function_is_refused_naming_both(registry: ToolMetadataRegistry) -> None:
    original = ToolMetadata(name="clash")
    registry.register(original, first_tool)

    with pytest.raises(ToolDefinitionError) as caught:
        registry.register(ToolMetadata(name="clash", priority=1), second_tool)

    message = str(caught.value)
    assert "'clash'" in message
    assert "first_tool" in message
    assert "second_tool" in message
    assert registry.get("clash") is original
    assert registry.get_function("clash") is first_tool


def test_registering_the_same_function_again_replaces_its_entry(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="first", priority=1), first_tool)
    replacement = ToolMetadata(name="first", priority=9)

    registry.register(replacement, first_tool)

    assert registry.get("first") is replacement
    assert len(registry) == 1


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, so races show up within a short test."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


class SwitchyName(str):
    """A tool name whose hashing runs Python code: with a tiny switch interval, threads may switch inside
    every dict operation of the registry, which widens any race between two of its steps."""

    __slots__ = ()

    def __hash__(self) -> int:
        return str.__hash__(self)


def run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    """Start every target at once; return what they raised."""
    start = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> None:
        try:
            start.wait()
            target()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def test_concurrent_writers_and_readers_see_a_consistent_registry(
    registry: ToolMetadataRegistry, frequent_thread_switches: None
) -> None:
    """16 writers register 500 tools each while readers check that every listed tool has its function."""
    writers, per_writer = 16, 500
    writers_left = threading.Semaphore(0)

    def write(index: int) -> None:
        for n in range(per_writer):
            registry.register(ToolMetadata(name=SwitchyName(f"w{index:02d}_{n:03d}")), first_tool)
        writers_left.release()

    def read() -> None:
        finished = 0
        while finished < writers:
            names = [m.name for m in registry.list_all()]
            assert names == sorted(names)
            missing = [name for name in names if registry.get_function(name) is None]
            assert missing == [], f"listed without their function: {missing[:3]}"
            if writers_left.acquire(blocking=False):
                finished += 1

    errors = run_threads([lambda i=i: write(i) for i in range(writers)] + [read])

    assert errors == []
    assert len(registry) == writers * per_writer
    assert len(registry.list_all()) == writers * per_writer
    assert all(registry.get_function(m.name) is first_tool for m in registry.list_all())


def test_concurrent_claims_on_one_name_let_exactly_one_function_win(
    registry: ToolMetadataRegistry, frequent_thread_switches: None
) -> None:
    rounds, claimants = 50, 8
    for round_number in range(rounds):
        name = SwitchyName(f"contested_{round_number}")
        functions: list[Callable[[], None]] = []
        for index in range(claimants):

            def claimant() -> None:
                pass

            claimant.__qualname__ = f"claimant_{index}"
            functions.append(claimant)

        errors = run_threads(
            [functools.partial(registry.register, ToolMetadata(name=name), f) for f in functions]
        )

        assert len(errors) == claimants - 1, f"round {round_number}: {len(errors)} refusals"
        assert all(isinstance(error, ToolDefinitionError) for error in errors)
        assert registry.get_function(name) in functions


# -- @tool_metadata --------------------------------------------------------------------------------


def test_bare_decorator_registers_in_the_global_registry(
    global_registry_guard: ToolMetadataRegistry,
) -> None:
    @tool_metadata
    def ut_bare_decorated(x: int) -> int:
        return x + 1

    metadata = getattr(ut_bare_decorated, METADATA_ATTRIBUTE)
    assert metadata == ToolMetadata(name="ut_bare_decorated")
    assert get_registry().get("ut_bare_decorated") is metadata
    assert get_registry().get_function("ut_bare_decorated") is ut_bare_decorated


def test_decorator_returns_the_function_unchanged_and_callable(registry: ToolMetadataRegistry) -> None:
    def add_one(x: int) -> int:
        return x + 1

    decorated = tool_metadata(registry=registry)(add_one)

    assert decorated is add_one
    assert decorated(1) == 2


def test_decorator_with_arguments_sets_fields(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(
        name="renamed",
        runtime="trio",
        registry=registry,
        category="net",
        priority=8,
        timeout_seconds=2.5,
        read_only=True,
    )
    def original_name() -> None:
        pass

    metadata = getattr(original_name, METADATA_ATTRIBUTE)
    assert metadata.name == "renamed"
    assert metadata.runtime == "trio"
    assert metadata.category == "net"
    assert metadata.priority == 8
    assert metadata.timeout_seconds == 2.5
    assert metadata.read_only is True
    assert registry.get("renamed") is metadata
    assert registry.get_function("renamed") is original_name
    assert "original_name" not in registry


def test_decorator_with_private_registry_leaves_the_global_one_alone(registry: ToolMetadataRegistry) -> None:
    @tool_metadata(registry=registry)
    def ut_private_only() -> None:
        pass

    assert "ut_private_only" in registry
    assert "ut_private_only" not in get_registry()


def test_decorator_refuses_unknown_field_naming_it(registry: ToolMetadataRegistry) -> None:
    def tool() -> None:
        pass

    with pytest.raises(ToolDefinitionError) as caught:
        tool_metadata(registry=registry, colour="red", prio=3)(tool)

    assert "colour" in str(caught.value)
    assert "prio" in str(caught.value)
    assert len(registry) == 0
    assert not hasattr(tool, METADATA_ATTRIBUTE)


def test_decorator_refuses_invalid_field_value(registry: ToolMetadataRegistry) -> None:
    def tool() -> None:
        pass

    with pytest.raises(ToolDefinitionError, match="priority=11"):
        tool_metadata(registry=registry, priority=11)(tool)

    assert len(registry) == 0


def test_decorator_refuses_something_not_callable(registry: ToolMetadataRegistry) -> None:
    with pytest.raises(ToolDefinitionError, match="must decorate a function"):
        tool_metadata(registry=registry)(42)  # type: ignore[type-var]


def test_decorator_refuses_a_name_taken_by_another_function(registry: ToolMetadataRegistry) -> None:
    tool_metadata(name="shared_name", registry=registry)(first_tool)

    with pytest.raises(ToolDefinitionError, match="defined twice"):
        tool_metadata(name="shared_name", registry=registry)(second_tool)


def test_task_support_defaults_to_forbidden_and_takes_the_three_values() -> None:
    assert ToolMetadata(name="t").task_support == "forbidden"
    for support in ("forbidden", "optional", "required"):
        assert ToolMetadata(name="t", task_support=support).task_support == support  # type: ignore[arg-type]
    assert ToolMetadata(name="t", task_support="required", task_after_input=True).task_after_input


@pytest.mark.parametrize("support", ["always", "", None, True])
def test_invalid_task_support_is_refused_naming_field_and_value(support: Any) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        ToolMetadata(name="t", task_support=support)

    assert f"task_support={support!r}" in str(caught.value)


def test_task_after_input_without_task_support_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="task_after_input=True needs task_support"):
        ToolMetadata(name="t", task_after_input=True)


def test_scopes_are_validated_and_survive_the_wire() -> None:
    """Issue 16: a tool's scopes come back as a list from msgpack and are kept as a tuple."""
    metadata = ToolMetadata(name="t", scopes=["a", "b"])  # type: ignore[arg-type]
    assert metadata.scopes == ("a", "b")
    assert ToolMetadata(**metadata.to_dict()) == metadata
    for bad in (["has space"], [""], "a", [1]):
        with pytest.raises(ToolDefinitionError, match="scopes"):
            ToolMetadata(name="t", scopes=bad)  # type: ignore[arg-type]
