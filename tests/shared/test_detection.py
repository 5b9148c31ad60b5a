"""Tests of shared/detection.py: each step of detect_runtime's order, and that it beats the steps after it.

Every test passes a private registry; the conftest clears the detection cache around each test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.detection import clear_cache, detect_runtime
from shared.metadata import ToolMetadata, ToolMetadataRegistry, get_registry


def make_function(module: str = "acme.tools", runtime_attribute: str | None = None) -> Callable[..., Any]:
    """A function defined in ``module``, optionally with ``__mcp_runtime__`` set."""

    def tool() -> None:
        pass

    tool.__module__ = module
    if runtime_attribute is not None:
        tool.__mcp_runtime__ = runtime_attribute  # type: ignore[attr-defined]
    return tool


# -- 1. the cache ----------------------------------------------------------------------------------


def test_cached_answer_beats_a_later_registry_change(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="tool", runtime="trio"))
    assert detect_runtime("tool", registry=registry) == "trio"

    registry.register(ToolMetadata(name="tool", runtime="asyncio"))

    assert detect_runtime("tool", registry=registry) == "trio"


def test_clear_cache_makes_the_registry_change_visible(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="tool", runtime="trio"))
    assert detect_runtime("tool", registry=registry) == "trio"
    registry.register(ToolMetadata(name="tool", runtime="asyncio"))

    clear_cache()

    assert detect_runtime("tool", registry=registry) == "asyncio"


def test_use_cache_false_neither_reads_nor_writes_the_cache(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="tool", runtime="trio"))
    assert detect_runtime("tool", registry=registry) == "trio"
    registry.register(ToolMetadata(name="tool", runtime="asyncio"))

    assert detect_runtime("tool", registry=registry, use_cache=False) == "asyncio"
    # The uncached answer was not stored: the cached one is still served.
    assert detect_runtime("tool", registry=registry) == "trio"


def test_cache_is_per_tool_name(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="one", runtime="trio"))
    registry.register(ToolMetadata(name="two", runtime="asyncio"))

    assert detect_runtime("one", registry=registry) == "trio"
    assert detect_runtime("two", registry=registry) == "asyncio"


# -- 2. explicit metadata --------------------------------------------------------------------------


def test_explicit_metadata_beats_the_registry(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="tool", runtime="trio"))

    runtime = detect_runtime("tool", metadata=ToolMetadata(name="tool", runtime="asyncio"), registry=registry)

    assert runtime == "asyncio"


def test_explicit_metadata_beats_function_attribute_and_name_pattern(registry: ToolMetadataRegistry) -> None:
    func = make_function(module="acme.trio_tools", runtime_attribute="trio")

    runtime = detect_runtime(
        "p2p_tool", func, ToolMetadata(name="p2p_tool", runtime="asyncio"), registry=registry
    )

    assert runtime == "asyncio"


def test_auto_metadata_defers_to_the_registry(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="tool", runtime="trio"))

    assert detect_runtime("tool", metadata=ToolMetadata(name="tool"), registry=registry) == "trio"


# -- 3. the registry -------------------------------------------------------------------------------


def test_registry_beats_function_attribute(registry: ToolMetadataRegistry) -> None:
    func = make_function(runtime_attribute="trio")
    registry.register(ToolMetadata(name="tool", runtime="asyncio"), func)

    assert detect_runtime("tool", func, registry=registry) == "asyncio"


def test_auto_in_registry_defers_to_function_attribute(registry: ToolMetadataRegistry) -> None:
    func = make_function(runtime_attribute="trio")
    registry.register(ToolMetadata(name="tool", runtime="auto"), func)

    assert detect_runtime("tool", func, registry=registry) == "trio"


def test_registered_function_is_used_when_none_is_given(registry: ToolMetadataRegistry) -> None:
    registry.register(ToolMetadata(name="tool"), make_function(runtime_attribute="trio"))

    assert detect_runtime("tool", registry=registry) == "trio"


def test_empty_private_registry_is_used_instead_of_the_global_one(
    registry: ToolMetadataRegistry, global_registry_guard: ToolMetadataRegistry
) -> None:
    """Regression: an empty registry is falsy (``__len__`` is 0) and used to be replaced by the global one."""
    global_registry_guard.register(ToolMetadata(name="ut_only_in_global", runtime="trio"))
    assert len(registry) == 0

    assert detect_runtime("ut_only_in_global", registry=registry) == "asyncio"


def test_global_registry_is_used_when_no_registry_is_given(
    global_registry_guard: ToolMetadataRegistry,
) -> None:
    global_registry_guard.register(ToolMetadata(name="ut_detect_global", runtime="trio"))

    assert get_registry() is global_registry_guard
    assert detect_runtime("ut_detect_global") == "trio"


# -- 4. the function attribute ---------------------------------------------------------------------


def test_function_attribute_beats_module_pattern(registry: ToolMetadataRegistry) -> None:
    func = make_function(module="acme.trio_tools", runtime_attribute="asyncio")

    assert detect_runtime("tool", func, registry=registry) == "asyncio"


def test_invalid_function_attribute_is_ignored(registry: ToolMetadataRegistry) -> None:
    func = make_function(module="acme.tools", runtime_attribute="gevent")

    assert detect_runtime("add_peer", func, registry=registry) == "trio"


# -- 4. requires_p2p -------------------------------------------------------------------------------


def test_requires_p2p_means_trio(registry: ToolMetadataRegistry) -> None:
    metadata = ToolMetadata(name="echo_all", requires_p2p=True)

    assert detect_runtime("echo_all", metadata=metadata, registry=registry) == "trio"


def test_requires_p2p_beats_function_attribute_and_module(registry: ToolMetadataRegistry) -> None:
    func = make_function(module="acme.asyncio_tools", runtime_attribute="asyncio")
    registry.register(ToolMetadata(name="echo_all", requires_p2p=True), func)

    assert detect_runtime("echo_all", func, registry=registry) == "trio"


# -- 5. the module pattern -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("acme.trio_tools", "trio"),
        ("trio_helpers", "trio"),
        ("acme.p2p.handlers", "trio"),
        ("acme.asyncio_tools", "asyncio"),
        ("acme.patriot_tools", "asyncio"),  # a segment, never a substring: "patriot" is not "trio"
        ("acme.trios", "asyncio"),
        ("acme.asyncio-helpers.trio", "asyncio"),  # the first matching segment from the left wins
    ],
)
def test_module_pattern_decides(registry: ToolMetadataRegistry, module: str, expected: str) -> None:
    assert detect_runtime("tool", make_function(module=module), registry=registry) == expected


def test_module_pattern_beats_name_pattern(registry: ToolMetadataRegistry) -> None:
    func = make_function(module="acme.asyncio_tools")

    assert detect_runtime("p2p_send", func, registry=registry) == "asyncio"


def test_module_matching_no_pattern_leaves_the_name_patterns_to_decide(
    registry: ToolMetadataRegistry,
) -> None:
    """A part that matches no pattern leaves the decision to the name patterns."""
    func = make_function(module="acme.tools")

    assert detect_runtime("p2p_send", func, registry=registry) == "trio"


# -- 6. the name patterns, then the default --------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "p2p_send",
        "send.p2p",
        "run_workflow_step",
        "workflow",
        "list-workflows",
        "taskqueue_push",
        "list_peers",
        "add_peer",
        "bootstrap_node",
    ],
)
def test_name_patterns_choose_trio(registry: ToolMetadataRegistry, name: str) -> None:
    assert detect_runtime(name, registry=registry) == "trio"


@pytest.mark.parametrize(
    "name",
    [
        "echo",
        "p2",
        "xp2p_send",
        "work_flow",
        "PEER",
        "task_queue",
        "peer_review",  # "peer" counts only as the last segment
        "peers_list",
        "workflowish",
        "bootstrapped",
    ],
)
def test_other_names_get_the_asyncio_default(registry: ToolMetadataRegistry, name: str) -> None:
    assert detect_runtime(name, registry=registry) == "asyncio"


def test_function_without_any_hint_gets_the_default(registry: ToolMetadataRegistry) -> None:
    assert detect_runtime("echo", make_function(module="acme.tools"), registry=registry) == "asyncio"
