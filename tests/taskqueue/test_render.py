"""The graph renderers (``render.py``): labels escaped in Graphviz dot and Mermaid."""

from __future__ import annotations

from trio_worker.taskqueue.render import Node, to_dot, to_mermaid


def test_labels_are_escaped_in_dot_and_mermaid() -> None:
    nodes = [Node("a", 'say "hi" <b>\\', "completed", 1.5), Node("b-2", "x", "pending", None)]
    dot = to_dot('name "q"', nodes, [("a", "b-2")], ["a", "b-2"])
    assert 'digraph "name \\"q\\"" {' in dot
    assert 'label="a\\nsay \\"hi\\" <b>\\\\\\ncompleted · 1.5 s"' in dot
    assert '"a" -> "b-2" [color="#d32f2f", penwidth=2];' in dot
    mermaid = to_mermaid(nodes, [("a", "b-2")], ["a", "b-2"])
    assert 's0["a<br/>say #quot;hi#quot; #lt;b#gt;\\<br/>completed · 1.5 s"]' in mermaid
    assert "    s0 --> s1" in mermaid and "linkStyle 0 stroke:#d32f2f" in mermaid
