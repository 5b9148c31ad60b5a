"""Workflow graphs, as pure functions: checking a DAG, references between steps, order and critical path.

Order and cycles come from ``graphlib.TopologicalSorter``; this module makes its answers deterministic
(submission order among ready steps, a cycle told from its step submitted first).

References
----------
A string anywhere inside a step's ``inputs`` may refer to the output of an earlier step::

    "${steps.<step_id>.output}"                 the whole output
    "${steps.<step_id>.output.<key>.<key>}"     a member; a number indexes a list: items.0.name

A string that is exactly one reference is replaced by the referred value with its JSON type (an object,
a number, a list...). A reference inside a longer string is replaced by text: strings as they are, other
values as compact JSON (``"id=${steps.a.output.id}"`` -> ``"id=42"``). ``$${`` stands for a literal
``${``. A reference to a step makes it a dependency, as if it were listed in ``depends_on``.

A step's *output* is its tool result's ``structuredContent`` when there is one; otherwise the text of its
only text block; otherwise its list of content blocks.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

from .errors import InvalidRequestError
from .models import WorkflowStep

REFERENCE = re.compile(r"\$\{steps\.([A-Za-z0-9][A-Za-z0-9_-]*)\.output((?:\.[^.{}]+)*)\}")
_ESCAPED = "$${"
_ANY_PLACEHOLDER = re.compile(r"(?<!\$)\$\{")


def output_of(result: Mapping[str, Any]) -> Any:
    """The output of a tool result: ``structuredContent``, else the only text block's text, else content."""
    structured = result.get("structuredContent")
    if structured is not None:
        return structured
    content = list(result.get("content") or [])
    if len(content) == 1 and isinstance(content[0], dict) and content[0].get("type") == "text":
        return content[0].get("text", "")
    return content


def result_text(result: Mapping[str, Any], limit: int = 500) -> str:
    """The text of a result's text blocks on one line, cut at ``limit`` characters (for error messages)."""
    texts = [
        str(block.get("text", ""))
        for block in result.get("content") or []
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    text = " ".join(" ".join(texts).split())
    return (text[: limit - 1] + "…") if len(text) > limit else (text or "(no message)")


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    """Every string inside ``value`` with its dotted path."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [item for key, inner in value.items() for item in _strings(inner, f"{path}.{key}")]
    if isinstance(value, list):
        return [item for index, inner in enumerate(value) for item in _strings(inner, f"{path}.{index}")]
    return []


def references(inputs: Any, field: str = "inputs") -> list[tuple[str, str]]:
    """``(input path, step id)`` for every reference in ``inputs``.

    Raises:
        InvalidRequestError: a ``${`` that is not a well-formed reference (and not escaped as ``$${``).
    """
    found: list[tuple[str, str]] = []
    for path, text in _strings(inputs, field):
        stripped = REFERENCE.sub("", text.replace(_ESCAPED, ""))
        if _ANY_PLACEHOLDER.search(stripped):
            raise InvalidRequestError(
                f"{path}: malformed reference in {text!r}; write ${{steps.<step_id>.output.<path>}} "
                "(or $${ for a literal ${)"
            )
        found.extend((path, match.group(1)) for match in REFERENCE.finditer(text.replace(_ESCAPED, "")))
    return found


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a string that is exactly one reference (its type is only known at run time)."""
    return isinstance(value, str) and REFERENCE.fullmatch(value) is not None


def contains_reference(value: Any) -> bool:
    return any(is_reference(text) for _, text in _strings(value, ""))


@dataclass(frozen=True, slots=True)
class Graph:
    """A checked workflow graph: step ids in submission order and each step's dependencies (declared and
    implied by references), dependencies listed in submission order."""

    order: tuple[str, ...]
    depends_on: Mapping[str, tuple[str, ...]]

    def dependants(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {step: [] for step in self.order}
        for step in self.order:
            for dependency in self.depends_on[step]:
                result[dependency].append(step)
        return result

    def edges(self) -> list[tuple[str, str]]:
        """``(dependency, dependant)`` pairs: the direction work flows."""
        return [(dependency, step) for step in self.order for dependency in self.depends_on[step]]


def build_graph(steps: Sequence[WorkflowStep]) -> Graph:
    """Check the steps form a DAG and return it.

    Raises:
        InvalidRequestError: a duplicate step id, a dependency or reference to an unknown step, a malformed
            reference, or a cycle — named in the direction work flows, e.g. ``cycle: a -> b -> a``.
    """
    if not steps:
        raise InvalidRequestError("steps: a workflow needs at least one step")
    order: list[str] = []
    for index, step in enumerate(steps):
        if step.step_id in order:
            raise InvalidRequestError(f"steps[{index}].step_id: duplicate step {step.step_id!r}")
        order.append(step.step_id)
    known = set(order)
    depends_on: dict[str, tuple[str, ...]] = {}
    for index, step in enumerate(steps):
        wanted: list[str] = []
        for dependency in step.depends_on:
            if dependency not in known:
                raise InvalidRequestError(f"steps[{index}].depends_on: unknown step {dependency!r}")
            wanted.append(dependency)
        for path, dependency in references(step.inputs, f"steps[{index}].inputs"):
            if dependency not in known:
                raise InvalidRequestError(f"{path}: refers to unknown step {dependency!r}")
            wanted.append(dependency)
        unique = set(wanted)
        depends_on[step.step_id] = tuple(s for s in order if s in unique)
    graph = Graph(tuple(order), depends_on)
    cycle = find_cycle(graph)
    if cycle is not None:
        raise InvalidRequestError("cycle: " + " -> ".join(cycle))
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle as a closed path in the direction work flows (``[a, b, a]``), or ``None``.

    ``graphlib`` searches from the steps in submission order, following dependants in submission order,
    and the cycle is told from its step submitted first, so the same graph always gets the same answer.
    """
    try:
        _sorter(graph).prepare()
    except CycleError as exc:
        # graphlib gives a closed path in which each step is a dependency of the next one
        loop: list[str] = list(exc.args[1][:-1])
        position = {step: index for index, step in enumerate(graph.order)}
        first = min(range(len(loop)), key=lambda i: position[loop[i]])
        loop = loop[first:] + loop[:first]
        return [*loop, loop[0]]
    return None


def _sorter(graph: Graph) -> TopologicalSorter[str]:
    """A ``TopologicalSorter`` of the graph that knows its steps, and each step's dependants, in
    submission order (``graphlib`` keeps the order it was told things in)."""
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for step in graph.order:
        sorter.add(step)
    for step in graph.order:
        sorter.add(step, *graph.depends_on[step])
    return sorter


def levels(graph: Graph) -> list[list[str]]:
    """The steps in stages: each stage depends only on earlier ones (what can run in parallel)."""
    level: dict[str, int] = {}
    for step in topological_order(graph):
        level[step] = 1 + max((level[d] for d in graph.depends_on[step]), default=-1)
    stages: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for step in graph.order:
        stages[level[step]].append(step)
    return stages


def topological_order(graph: Graph) -> list[str]:
    """Every step after its dependencies; among ready steps, submission order.

    Raises:
        graphlib.CycleError: the graph has a cycle (``build_graph`` refuses those).
    """
    sorter = _sorter(graph)
    sorter.prepare()
    position = {step: index for index, step in enumerate(graph.order)}
    ready: list[tuple[int, str]] = []
    result: list[str] = []
    while sorter.is_active():
        for step in sorter.get_ready():
            heapq.heappush(ready, (position[step], step))
        _, step = heapq.heappop(ready)
        result.append(step)
        sorter.done(step)
    return result


def critical_path(graph: Graph, durations: Mapping[str, float | None]) -> tuple[list[str], float] | None:
    """The chain of dependent steps with the longest total duration, and that duration.

    ``None`` when any step's duration is unknown: the longest chain cannot be told without it.
    """
    if any(durations.get(step) is None for step in graph.order):
        return None
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}
    order = topological_order(graph)
    for step in order:
        previous = max(graph.depends_on[step], key=lambda d: finish[d], default=None)
        before[step] = previous
        finish[step] = (finish[previous] if previous is not None else 0.0) + float(durations[step] or 0.0)
    if not finish:
        return None
    rank = {step: index for index, step in enumerate(order)}
    # among chains of equal length the one reaching furthest wins, so the path always ends at a sink
    last: str | None = max(order, key=lambda s: (finish[s], rank[s]))
    total = finish[last] if last is not None else 0.0
    path: list[str] = []
    while last is not None:
        path.append(last)
        last = before[last]
    return list(reversed(path)), total


def resolve(inputs: Mapping[str, Any], outputs: Mapping[str, Any], field: str = "inputs") -> dict[str, Any]:
    """``inputs`` with every reference replaced by the referred output (see the module docstring).

    Raises:
        InvalidRequestError: a reference names a member the output does not have, or a step without output.
    """
    resolved = _resolve(dict(inputs), outputs, field)
    assert isinstance(resolved, dict)
    return resolved


def _resolve(value: Any, outputs: Mapping[str, Any], path: str) -> Any:
    if isinstance(value, dict):
        return {key: _resolve(inner, outputs, f"{path}.{key}") for key, inner in value.items()}
    if isinstance(value, list):
        return [_resolve(inner, outputs, f"{path}.{index}") for index, inner in enumerate(value)]
    if not isinstance(value, str):
        return value
    whole = REFERENCE.fullmatch(value)
    if whole is not None:
        return _lookup(whole, outputs, path)
    if "${" not in value:
        return value
    pieces = value.split(_ESCAPED)

    def substitute(match: re.Match[str]) -> str:
        found = _lookup(match, outputs, path)
        return found if isinstance(found, str) else json.dumps(found, separators=(",", ":"))

    return "${".join(REFERENCE.sub(substitute, piece) for piece in pieces)


def _lookup(match: re.Match[str], outputs: Mapping[str, Any], path: str) -> Any:
    step = match.group(1)
    if step not in outputs:
        raise InvalidRequestError(f"{path}: {match.group(0)} refers to step {step!r}, which has no output")
    value = outputs[step]
    walked = f"steps.{step}.output"
    for key in [part for part in match.group(2).split(".") if part]:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.lstrip("-").isdigit() and -len(value) <= int(key) < len(value):
            value = value[int(key)]
        else:
            kind = (
                type(value).__name__
                if not isinstance(value, (dict, list))
                else ("object" if isinstance(value, dict) else f"list of {len(value)}")
            )
            raise InvalidRequestError(
                f"{path}: {match.group(0)} does not resolve: {walked} ({kind}) has no member {key!r}"
            )
        walked += f".{key}"
    return value
