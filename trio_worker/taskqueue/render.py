"""A workflow graph as Graphviz ``dot`` or Mermaid flowchart text.

Both show one box per step (its id, tool and status), an arrow from each dependency to its dependant, and
the critical path's arrows in red. Node ids are quoted (dot) or replaced by ``s0, s1, ...`` (Mermaid, whose
ids allow fewer characters), and labels are escaped, so any step id and tool name renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STATUS_COLOURS = {
    "pending": "#eeeeee",
    "queued": "#fff3c4",
    "running": "#bbdefb",
    "completed": "#c8e6c9",
    "failed": "#ffcdd2",
    "cancelled": "#e0e0e0",
}
CRITICAL_COLOUR = "#d32f2f"


@dataclass(frozen=True, slots=True)
class Node:
    step_id: str
    action: str
    status: str
    duration: float | None


def _critical_edges(critical: Sequence[str] | None) -> set[tuple[str, str]]:
    if not critical:
        return set()
    return set(zip(critical, critical[1:], strict=False))


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label_lines(node: Node) -> list[str]:
    lines = [node.step_id, node.action, node.status]
    if node.duration is not None:
        lines[-1] += f" · {node.duration:.3g} s"
    return lines


def to_dot(
    name: str, nodes: Sequence[Node], edges: Sequence[tuple[str, str]], critical: Sequence[str] | None
) -> str:
    """The graph as a Graphviz ``digraph`` (left to right)."""
    on_path = set(critical or ())
    hot = _critical_edges(critical)
    out = [
        f"digraph {_dot_quote(name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for node in nodes:
        label = "\\n".join(
            text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") for text in _label_lines(node)
        )
        attributes = [f'label="{label}"', f'fillcolor="{STATUS_COLOURS.get(node.status, "#ffffff")}"']
        if node.step_id in on_path:
            attributes.append(f'color="{CRITICAL_COLOUR}", penwidth=2')
        out.append(f"  {_dot_quote(node.step_id)} [{', '.join(attributes)}];")
    for source, target in edges:
        style = f' [color="{CRITICAL_COLOUR}", penwidth=2]' if (source, target) in hot else ""
        out.append(f"  {_dot_quote(source)} -> {_dot_quote(target)}{style};")
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    replacements = {"&": "#amp;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "\n": " "}
    return "".join(replacements.get(char, char) for char in text)


def to_mermaid(
    nodes: Sequence[Node], edges: Sequence[tuple[str, str]], critical: Sequence[str] | None
) -> str:
    """The graph as a Mermaid ``flowchart LR``, with a class per status and the critical path in red."""
    ids = {node.step_id: f"s{index}" for index, node in enumerate(nodes)}
    hot = _critical_edges(critical)
    out = ["flowchart LR"]
    for node in nodes:
        label = "<br/>".join(_mermaid_text(text) for text in _label_lines(node))
        out.append(f'    {ids[node.step_id]}["{label}"]')
    critical_links: list[int] = []
    for index, (source, target) in enumerate(edges):
        out.append(f"    {ids[source]} --> {ids[target]}")
        if (source, target) in hot:
            critical_links.append(index)
    for status, colour in STATUS_COLOURS.items():
        out.append(f"    classDef {status} fill:{colour},stroke:#555555")
    by_status: dict[str, list[str]] = {}
    for node in nodes:
        if node.status in STATUS_COLOURS:
            by_status.setdefault(node.status, []).append(ids[node.step_id])
    for status, members in by_status.items():
        out.append(f"    class {','.join(members)} {status}")
    if critical_links:
        out.append(
            f"    linkStyle {','.join(str(i) for i in critical_links)} stroke:{CRITICAL_COLOUR},stroke-width:3px"
        )
    return "\n".join(out) + "\n"
