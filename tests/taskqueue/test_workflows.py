"""Workflow graphs on their own (``workflows.py``): implicit dependencies, levels, cycles, references,
outputs and the critical path."""

from __future__ import annotations

from typing import Any

import pytest

from trio_worker.taskqueue.errors import InvalidRequestError
from trio_worker.taskqueue.models import WorkflowStep
from trio_worker.taskqueue.workflows import (
    build_graph,
    critical_path,
    levels,
    output_of,
    references,
    resolve,
)


def steps(
    *specs: tuple[str, list[str]], inputs: dict[str, dict[str, Any]] | None = None
) -> list[WorkflowStep]:
    return [
        WorkflowStep(step_id=step_id, action="tool", depends_on=deps, inputs=(inputs or {}).get(step_id, {}))
        for step_id, deps in specs
    ]


def test_a_graph_with_references_gets_implicit_dependencies_and_levels() -> None:
    graph = build_graph(
        steps(
            ("a", []),
            ("b", []),
            ("c", ["a"]),
            inputs={"c": {"x": "${steps.b.output.y}", "z": ["${steps.a.output}"]}},
        )
    )
    assert graph.depends_on["c"] == ("a", "b")
    assert levels(graph) == [["a", "b"], ["c"]]
    assert graph.edges() == [("a", "c"), ("b", "c")]


def test_cycles_are_named_from_the_first_submitted_step() -> None:
    with pytest.raises(InvalidRequestError, match=r"^cycle: a -> c -> b -> a$"):
        build_graph(steps(("z", []), ("a", ["b"]), ("b", ["c"]), ("c", ["a", "z"])))


def test_references_parse_escape_and_resolve() -> None:
    inputs = {
        "whole": "${steps.a.output.items.1}",
        "text": "n=${steps.a.output.n}!",
        "lit": "$${steps.a.output}",
    }
    assert [step for _, step in references(inputs)] == ["a", "a"]
    outputs = {"a": {"items": [{"k": 1}, {"k": 2}], "n": 3}}
    assert resolve(inputs, outputs) == {"whole": {"k": 2}, "text": "n=3!", "lit": "${steps.a.output}"}
    with pytest.raises(InvalidRequestError, match=r"inputs\.whole: .* has no member 'k'"):
        resolve({"whole": "${steps.a.output.n.k}"}, outputs)
    with pytest.raises(InvalidRequestError, match=r"malformed reference"):
        references({"x": "${steps.a.outputs}"})


def test_outputs_are_structured_content_else_text_else_content() -> None:
    assert output_of({"content": [{"type": "text", "text": "{}"}], "structuredContent": {"a": 1}}) == {"a": 1}
    assert output_of({"content": [{"type": "text", "text": "hello"}]}) == "hello"
    image = {"type": "image", "data": "", "mimeType": "image/png"}
    assert output_of({"content": [image]}) == [image]


def test_the_critical_path_is_the_longest_chain_or_none_when_a_duration_is_unknown() -> None:
    graph = build_graph(steps(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])))
    assert critical_path(graph, {"a": 1, "b": 2, "c": 5, "d": 1}) == (["a", "c", "d"], 7.0)
    assert critical_path(graph, {"a": 1, "b": 2, "c": None, "d": 1}) is None
    assert critical_path(graph, dict.fromkeys("abcd", 0.0)) == (["a", "b", "d"], 0.0)  # a whole chain
