"""Workflows end to end on the engine: a diamond DAG with data passing, refused graphs, failure and cancel
semantics, workflow dependencies, and the graph in json, dot and mermaid with the critical path."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import trio

from trio_worker.taskqueue.errors import ConflictError, InvalidRequestError, NotFoundError

from .conftest import Target, eventually, serving, wait_status, wait_workflow
from .fakes import FakeExecutor, ManualClock

pytestmark = pytest.mark.anyio

DIAMOND: list[dict[str, Any]] = [
    {"step_id": "a", "action": "add", "inputs": {"a": 1, "b": 2}},
    {
        "step_id": "b",
        "action": "gate",
        "inputs": {"key": "b", "value": "${steps.a.output.sum}"},
        "depends_on": ["a"],
    },
    {"step_id": "c", "action": "gate", "inputs": {"key": "c", "value": "c saw ${steps.a.output}"}},
    {
        "step_id": "d",
        "action": "echo",
        "inputs": {"message": "b=${steps.b.output.value} c=${steps.c.output.value} $${not a reference}"},
        "depends_on": ["b", "c"],
    },
    {"step_id": "e", "action": "add", "inputs": {"a": "${steps.b.output.value}", "b": 0.5}},
]


async def test_a_diamond_runs_its_middle_steps_in_parallel_and_passes_data(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        submitted = await engine.workflow_submit("diamond", DIAMOND, workflow_id="wf1", tags=["demo"])
        assert submitted["levels"] == [["a"], ["b", "c"], ["d", "e"]]
        b = await fake.wait_started("b")
        c = await fake.wait_started("c")
        assert b.ended_at is None and c.ended_at is None  # both running at the same time
        assert b.arguments == {"key": "b", "value": 3}  # a whole reference keeps the JSON type
        assert c.arguments == {"key": "c", "value": 'c saw {"sum":3}'}  # inside text: compact JSON
        status = await engine.workflow_status("wf1")
        assert {s["step_id"]: s["status"] for s in status["steps"]} == {
            "a": "completed",
            "b": "running",
            "c": "running",
            "d": "pending",
            "e": "pending",
        }
        assert status["step_counts"] == {"completed": 1, "running": 2, "pending": 2}
        fake.release("b")
        fake.release("c")
        await wait_workflow(engine, "wf1", "completed")
        result = await engine.workflow_result("wf1")
        assert result["success"] and result["error"] is None
        assert result["outputs"]["d"] == {"message": 'b=3 c=c saw {"sum":3} ${not a reference}'}
        assert result["outputs"]["e"] == {"sum": 3.5}
        assert result["final_outputs"] == {"d": result["outputs"]["d"], "e": {"sum": 3.5}}
        step_task = await engine.task_status("wf1/d")
        assert (
            step_task["workflow_id"] == "wf1"
            and step_task["step_id"] == "d"
            and step_task["tags"] == ["demo"]
        )
        listed = await engine.workflow_list(
            status_filter="completed", tag_filter=["demo"], peer_filter="fake-0"
        )
        assert [w["workflow_id"] for w in listed["workflows"]] == ["wf1"]
        assert (await engine.workflow_list(peer_filter="nobody"))["total_count"] == 0


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [
                {"step_id": "a", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["b"]},
                {"step_id": "b", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["a"]},
            ],
            "cycle: a -> b -> a",
        ),
        (
            [
                {"step_id": "start", "action": "echo", "inputs": {"message": "x"}},
                {"step_id": "a", "action": "echo", "inputs": {"message": "${steps.c.output.message}"}},
                {"step_id": "b", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["a", "start"]},
                {"step_id": "c", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["b"]},
            ],
            "cycle: a -> b -> c -> a",
        ),
        (
            [{"step_id": "a", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["a"]}],
            "cycle: a -> a",
        ),
        (
            [{"step_id": "a", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["zz"]}],
            "steps[0].depends_on: unknown step 'zz'",
        ),
        (
            [{"step_id": "a", "action": "echo", "inputs": {"message": "${steps.zz.output}"}}],
            "steps[0].inputs.message: refers to unknown step 'zz'",
        ),
        (
            [{"step_id": "a", "action": "echo", "inputs": {"message": "${steps.a}"}}],
            "steps[0].inputs.message: malformed reference",
        ),
        ([{"step_id": "a", "action": "nope", "inputs": {}}], "steps[0].action: unknown tool 'nope'"),
        (
            [{"step_id": "a", "action": "add", "inputs": {"a": "x", "b": 1}}],
            "steps[0].inputs.a: 'x' is not of type",
        ),
        ([{"step_id": "a", "action": "add", "inputs": {"a": 1}}], "steps[0].inputs.b: required"),
        (
            [
                {"step_id": "a", "action": "echo", "inputs": {"message": "x"}},
                {"step_id": "a", "action": "echo", "inputs": {"message": "y"}},
            ],
            "steps[1].step_id: duplicate step 'a'",
        ),
        ([{"step_id": "a.b", "action": "echo"}], "steps[0].step_id: String should match pattern"),
        ([], "steps: must be a list of 1 to 1000 steps"),
    ],
)
async def test_invalid_graphs_are_refused_at_submit_naming_the_problem(
    database: Target, fake: FakeExecutor, steps: list[dict[str, Any]], message: str
) -> None:
    async with serving(database, fake) as engine:
        with pytest.raises(InvalidRequestError) as refused:
            await engine.workflow_submit("bad", steps)
        assert str(refused.value).startswith(message), str(refused.value)
        assert (await engine.workflow_list())["total_count"] == 0
        assert (await engine.task_list())["total_count"] == 0


async def test_a_reference_may_stand_where_the_schema_wants_another_type(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        steps = [
            {"step_id": "one", "action": "add", "inputs": {"a": 1, "b": 0}},
            {
                "step_id": "two",
                "action": "add",
                "inputs": {"a": "${steps.one.output.sum}", "b": "${steps.one.output.sum}"},
            },
        ]
        submitted = await engine.workflow_submit("refs", steps)
        await wait_workflow(engine, submitted["workflow_id"], "completed")
        assert (await engine.workflow_result(submitted["workflow_id"]))["outputs"]["two"] == {"sum": 2}


async def test_a_failed_step_fails_its_dependants_while_independent_steps_finish(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        steps = [
            {"step_id": "bad", "action": "flaky", "inputs": {"key": "bad", "failures": 5}},
            {"step_id": "after", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["bad"]},
            {"step_id": "last", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["after"]},
            {"step_id": "side", "action": "gate", "inputs": {"key": "side"}},
            {"step_id": "side2", "action": "echo", "inputs": {"message": "${steps.side.output.key}"}},
        ]
        submitted = await engine.workflow_submit("partial", steps, workflow_id="wf")
        await fake.wait_started("side")
        await wait_status(engine, "wf/bad", "failed")
        status = await engine.workflow_status("wf")
        assert status["status"] == "running"  # an independent step is still running
        by_id = {s["step_id"]: s for s in status["steps"]}
        assert (
            by_id["after"]["status"] == "failed"
            and by_id["after"]["error"] == "not run: dependency 'bad' failed"
        )
        assert by_id["last"]["error"] == "not run: dependency 'after' failed"
        assert by_id["side"]["status"] == "running"
        fake.release("side")
        await wait_workflow(engine, submitted["workflow_id"], "failed")
        result = await engine.workflow_result("wf", include_logs=True)
        assert result["error"] == "step 'bad' failed: tool 'flaky' failed: RuntimeError: boom 1"
        assert result["outputs"] == {"side": {"key": "side", "value": None}, "side2": {"message": "side"}}
        assert set(result["errors"]) == {"bad", "after", "last"}
        assert any("failed" in line["message"] for line in result["logs"]["bad"])
        assert result["logs"]["after"] == []  # never had a task
    assert [call.key for call in fake.calls if call.name == "echo"] == ["echo"]  # only side2 ran


async def test_a_reference_that_does_not_resolve_fails_the_step(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        steps = [
            {"step_id": "a", "action": "add", "inputs": {"a": 1, "b": 2}},
            {"step_id": "b", "action": "echo", "inputs": {"message": "${steps.a.output.total}"}},
        ]
        submitted = await engine.workflow_submit("unresolved", steps)
        await wait_workflow(engine, submitted["workflow_id"], "failed")
        status = await engine.workflow_status(submitted["workflow_id"])
        error = {s["step_id"]: s["error"] for s in status["steps"]}["b"]
        assert "inputs.message: ${steps.a.output.total} does not resolve" in error
        assert "has no member 'total'" in error


async def test_cancelling_a_workflow_stops_its_running_step_and_skips_the_rest(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        steps = [
            {"step_id": "a", "action": "gate", "inputs": {"key": "a"}},
            {"step_id": "b", "action": "echo", "inputs": {"message": "${steps.a.output.key}"}},
        ]
        await engine.workflow_submit("to cancel", steps, workflow_id="wc")
        call = await fake.wait_started("a")
        cancelled = await engine.workflow_cancel("wc", reason="not needed")
        assert cancelled["success"] and cancelled["status"] == "cancelled"
        assert sorted(cancelled["cancelled_steps"]) == ["a", "b"]
        assert call.outcome == "cancelled"
        status = await engine.workflow_status("wc")
        assert status["cancel_reason"] == "not needed"
        assert (await engine.task_status("wc/a"))["status"] == "cancelled"
        again = await engine.workflow_cancel("wc")
        assert again["success"] is False
        with pytest.raises(NotFoundError, match=r"^workflow_id: no workflow 'nope'"):
            await engine.workflow_cancel("nope")


async def test_a_workflow_waits_for_the_workflows_it_depends_on(database: Target, fake: FakeExecutor) -> None:
    async with serving(database, fake) as engine:
        await engine.workflow_submit(
            "first", [{"step_id": "s", "action": "gate", "inputs": {"key": "first"}}], workflow_id="w1"
        )
        second = await engine.workflow_submit(
            "second",
            [{"step_id": "s", "action": "echo", "inputs": {"message": "go"}}],
            workflow_id="w2",
            dependencies=["w1"],
        )
        assert second["status"] == "pending" and second["waiting_for"] == ["w1"]
        await fake.wait_started("first")
        assert (await engine.workflow_status("w2"))["status"] == "pending"
        fake.release("first")
        await wait_workflow(engine, "w2", "completed")

        await engine.queue_pause("so that w3 cannot fail before its dependants are submitted")
        await engine.workflow_submit(
            "doomed",
            [{"step_id": "s", "action": "flaky", "inputs": {"key": "doomed", "failures": 1}}],
            workflow_id="w3",
        )
        waiting = await engine.workflow_submit(
            "waits",
            [{"step_id": "s", "action": "echo", "inputs": {"message": "no"}}],
            workflow_id="w4",
            dependencies=["w3"],
        )
        chained = await engine.workflow_submit(
            "chained",
            [{"step_id": "s", "action": "echo", "inputs": {"message": "no"}}],
            workflow_id="w5",
            dependencies=["w4"],
        )
        assert waiting["status"] == chained["status"] == "pending"
        await engine.queue_resume()
        failed = await wait_workflow(engine, "w5", "failed")
        assert failed["error"] == "dependency workflow 'w4' failed"
        assert (await engine.workflow_status("w4"))["error"] == "dependency workflow 'w3' failed"
        with pytest.raises(ConflictError, match=r"^dependencies: workflow 'w3' failed"):
            await engine.workflow_submit(
                "late", [{"step_id": "s", "action": "echo", "inputs": {"message": "x"}}], dependencies=["w3"]
            )
        with pytest.raises(NotFoundError, match=r"^dependencies: unknown workflow 'zz'"):
            await engine.workflow_submit(
                "lost", [{"step_id": "s", "action": "echo", "inputs": {"message": "x"}}], dependencies=["zz"]
            )
        with pytest.raises(ConflictError, match=r"^workflow_id: a workflow 'w1' already exists"):
            await engine.workflow_submit(
                "dup", [{"step_id": "s", "action": "echo", "inputs": {"message": "x"}}], workflow_id="w1"
            )
    assert [call.key for call in fake.calls if call.name == "echo"] == ["echo"]  # only w2's step


async def test_the_graph_renders_as_json_dot_and_mermaid_with_the_measured_critical_path(
    database: Target, fake: FakeExecutor
) -> None:
    clock = ManualClock()
    steps = [
        {"step_id": "a", "action": "gate", "inputs": {"key": "a"}},
        {"step_id": "b", "action": "gate", "inputs": {"key": "b"}, "depends_on": ["a"]},
        {"step_id": "c", "action": "gate", "inputs": {"key": "c"}, "depends_on": ["a"]},
        {"step_id": "d", "action": "gate", "inputs": {"key": "d"}, "depends_on": ["b", "c"]},
    ]
    async with serving(database, fake, clock=clock) as engine:
        await engine.workflow_submit('graph "quoted"', steps, workflow_id="g")
        unknown = await engine.workflow_dependencies("g")
        assert unknown["critical_path"]["steps"] is None  # nothing measured yet: no guess
        assert set(unknown["critical_path"]["unknown_durations"]) == {"a", "b", "c", "d"}
        await fake.wait_started("a")
        clock.advance(1.0)
        fake.release("a")
        await fake.wait_started("b")
        await fake.wait_started("c")
        clock.advance(2.0)
        fake.release("c")
        await wait_status(engine, "g/c", "completed")
        clock.advance(3.0)
        fake.release("b")
        await fake.wait_started("d")
        clock.advance(1.0)
        fake.release("d")
        await wait_workflow(engine, "g", "completed")

        graph = await engine.workflow_dependencies("g", "json")
        assert graph["critical_path"] == {"steps": ["a", "b", "d"], "duration": 7.0, "unknown_durations": []}
        assert {n["id"]: n["duration"] for n in graph["nodes"]} == {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0}
        assert graph["edges"] == [
            {"from": "a", "to": "b"},
            {"from": "a", "to": "c"},
            {"from": "b", "to": "d"},
            {"from": "c", "to": "d"},
        ]
        assert graph["dag"]["a"] == {"depends_on": [], "dependants": ["b", "c"]}
        assert graph["levels"] == [["a"], ["b", "c"], ["d"]]

        dot = (await engine.workflow_dependencies("g", "dot"))["dag"]
        check_dot(dot, nodes={"a", "b", "c", "d"}, edges={("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")})
        assert re.search(r'"a" -> "b" \[color="#d32f2f"', dot) and not re.search(r'"a" -> "c" \[', dot)

        mermaid = (await engine.workflow_dependencies("g", "mermaid"))["dag"]
        check_mermaid(mermaid, nodes=4, edges=4)
        assert "linkStyle 0,2 stroke:#d32f2f" in mermaid  # a->b and b->d

        status = await engine.workflow_status("g", include_metrics=True)
        assert status["metrics"]["critical_path"]["duration"] == 7.0
        assert status["execution_time"] == 7.0

        # a new workflow of the same tools: durations now come from the measured average
        await engine.queue_pause()
        await engine.workflow_submit("again", steps, workflow_id="g2")
        estimated = await engine.workflow_dependencies("g2")
        assert {n["id"]: n["duration_source"] for n in estimated["nodes"]}["d"] == "average of its tool"
        assert estimated["critical_path"]["steps"] == ["a", "b", "d"]  # every gate averages 2.25 s
        with pytest.raises(InvalidRequestError, match=r"^format: unknown format 'png'"):
            await engine.workflow_dependencies("g", "png")  # type: ignore[arg-type]
        await engine.workflow_cancel("g2", force=True)


async def test_recent_workflows_are_the_newest_with_their_graphs_and_a_large_one_without(
    database: Target, fake: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trio_worker.taskqueue import workflow_ops

    monkeypatch.setattr(workflow_ops, "RECENT_GRAPH_STEPS", 4)
    async with serving(database, fake) as engine:
        await engine.queue_pause()
        await engine.workflow_submit("diamond", DIAMOND, workflow_id="big")  # 5 steps: over the limit
        steps = [
            {"step_id": "a", "action": "gate", "inputs": {"key": "a"}},
            {"step_id": "b", "action": "gate", "inputs": {"key": "b"}, "depends_on": ["a"]},
        ]
        for n in range(3):
            await engine.workflow_submit(f"small {n}", steps, workflow_id=f"w{n}")
        recent = await engine.recent_workflows(3)
        assert recent["total_count"] == 4
        assert [w["workflow_id"] for w in recent["workflows"]] == ["w2", "w1", "w0"]
        graph = recent["workflows"][0]["graph"]
        assert set(graph) == {"nodes", "edges", "levels", "critical_path"}
        assert [(n["id"], n["status"], n["depends_on"]) for n in graph["nodes"]] == [
            ("a", "queued", []),
            ("b", "pending", ["a"]),
        ]
        assert graph["edges"] == [{"from": "a", "to": "b"}] and graph["levels"] == [["a"], ["b"]]
        assert (await engine.recent_workflows(4))["workflows"][-1]["graph"] is None
        with pytest.raises(InvalidRequestError, match=r"^limit"):
            await engine.recent_workflows(0)
        for workflow_id in ("big", "w0", "w1", "w2"):
            await engine.workflow_cancel(workflow_id, force=True)


def check_dot(text: str, *, nodes: set[str], edges: set[tuple[str, str]]) -> None:
    """Parse with Graphviz when it is installed; otherwise check every line is a valid dot statement."""
    if shutil.which("dot"):
        parsed = subprocess.run(["dot", "-Tplain"], input=text, capture_output=True, text=True, check=True)
        assert parsed.returncode == 0
        assert {line.split()[1] for line in parsed.stdout.splitlines() if line.startswith("node ")} == nodes
        return
    lines = text.strip().splitlines()
    assert re.fullmatch(r'digraph "(?:[^"\\]|\\.)*" \{', lines[0]), lines[0]
    assert lines[-1] == "}"
    quoted = r'"(?:[^"\\]|\\.)*"'
    attribute = rf"\w+=(?:{quoted}|[\w.#]+)"
    attributes = rf"\[{attribute}(?:, {attribute})*\]"
    seen_nodes: set[str] = set()
    seen_edges: set[tuple[str, str]] = set()
    for line in lines[1:-1]:
        statement = line.strip()
        if re.fullmatch(rf"(?:rankdir=LR|node {attributes});", statement):
            continue
        edge = re.fullmatch(rf"({quoted}) -> ({quoted})(?: {attributes})?;", statement)
        node = re.fullmatch(rf"({quoted}) {attributes};", statement)
        assert edge or node, f"not a dot statement: {statement!r}"
        if edge:
            seen_edges.add((edge.group(1)[1:-1], edge.group(2)[1:-1]))
        elif node:
            seen_nodes.add(node.group(1)[1:-1])
    assert text.count("{") == text.count("}") == 1
    assert seen_nodes == nodes and seen_edges == edges


def check_mermaid(text: str, *, nodes: int, edges: int) -> None:
    """The shape of a Mermaid flowchart: header, node and link statements, class and link styles."""
    lines = text.strip().splitlines()
    assert lines[0] == "flowchart LR"
    node_lines = [line for line in lines[1:] if re.fullmatch(r'    s\d+\["[^"]*"\]', line)]
    link_lines = [line for line in lines[1:] if re.fullmatch(r"    s\d+ --> s\d+", line)]
    other = [
        line
        for line in lines[1:]
        if line not in node_lines
        and line not in link_lines
        and not re.fullmatch(r"    classDef \w+ fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6}", line)
        and not re.fullmatch(r"    class s\d+(,s\d+)* \w+", line)
        and not re.fullmatch(r"    linkStyle \d+(,\d+)* stroke:#[0-9a-f]{6},stroke-width:\d+px", line)
    ]
    assert other == [], other
    assert len(node_lines) == nodes and len(link_lines) == edges
    declared = {re.match(r"    (s\d+)", line).group(1) for line in node_lines}  # type: ignore[union-attr]
    for line in link_lines:
        source, target = re.findall(r"s\d+", line)
        assert source in declared and target in declared


async def test_workflow_list_pages_and_refuses_limits_out_of_range(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        for index in range(3):
            await engine.workflow_submit(
                f"w{index}",
                [{"step_id": "s", "action": "echo", "inputs": {"message": "x"}}],
                workflow_id=f"w{index}",
            )
        await eventually(lambda: _all_completed(engine, ["w0", "w1", "w2"]), "the workflows to complete")
        page = await engine.workflow_list(limit=2)
        assert [w["workflow_id"] for w in page["workflows"]] == ["w2", "w1"] and page["has_more"]
        assert (await engine.workflow_list(offset=2))["returned_count"] == 1
        for bad in (0, 1001):
            with pytest.raises(
                InvalidRequestError, match=rf"^limit: must be an integer from 1 to 1000, got {bad}"
            ):
                await engine.workflow_list(limit=bad)
        with pytest.raises(InvalidRequestError, match=r"^status_filter: unknown status 'queued'"):
            await engine.workflow_list(status_filter="queued")


async def _all_completed(engine: Any, ids: list[str]) -> bool:
    for workflow_id in ids:
        if (await engine.workflow_status(workflow_id))["status"] != "completed":
            return False
    return True


async def test_a_forced_workflow_cancel_returns_before_the_step_stopped(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        await engine.workflow_submit(
            "slow", [{"step_id": "s", "action": "slow_cleanup", "inputs": {"key": "s"}}], workflow_id="ws"
        )
        call = await fake.wait_started("s")
        with trio.fail_after(1):
            answer = await engine.workflow_cancel("ws", force=True)
        assert answer["status"] == "cancelled" and call.ended_at is None
        fake.release("s:cleanup")
        await eventually(lambda: call.ended_at is not None, "the step's call to stop")
