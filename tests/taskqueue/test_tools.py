"""The 20 tools as the worker sees them: their names, metadata and input schemas (built the way the
worker builds them), the error outside the queue process, and every tool called once through the same
argument validation a client's call goes through."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from shared.errors import InvalidArgumentsError
from shared.metadata import get_registry
from shared.schema import ToolSpec, build_tool_spec
from trio_worker.taskqueue import get_engine, set_engine
from trio_worker.taskqueue.errors import QueueUnavailableError

from .conftest import Target, serving, wait_status, wait_workflow
from .fakes import FakeExecutor

pytestmark = pytest.mark.anyio

NAMES = [
    "task_submit",
    "task_status",
    "task_cancel",
    "task_list",
    "task_priority",
    "task_result",
    "queue_stats",
    "queue_pause",
    "queue_resume",
    "queue_clear",
    "task_retry",
    "worker_register",
    "worker_unregister",
    "worker_status",
    "workflow_submit",
    "workflow_status",
    "workflow_cancel",
    "workflow_list",
    "workflow_dependencies",
    "workflow_result",
]


@pytest.fixture(scope="module")
def specs() -> Iterator[dict[str, ToolSpec]]:
    """The tools module imported into the process-wide registry, and taken out again afterwards."""
    registry = get_registry()
    before = {metadata.name for metadata in registry.list_all()}
    sys.modules.pop("trio_worker.taskqueue.tools", None)
    module = importlib.import_module("trio_worker.taskqueue.tools")
    yield {func.__name__: build_tool_spec(func) for func in module.TOOLS}
    for metadata in registry.list_all():
        if metadata.name not in before:
            registry.unregister(metadata.name)
    sys.modules.pop("trio_worker.taskqueue.tools", None)


def test_the_twenty_tools_with_their_metadata(specs: dict[str, ToolSpec]) -> None:
    assert list(specs) == NAMES
    for name, spec in specs.items():
        assert spec.runtime == "trio" and spec.metadata.requires_p2p, name
        assert spec.metadata.category == (
            "workflow"
            if name.startswith("workflow")
            else "workers"
            if name.startswith("worker")
            else "taskqueue"
        )
        assert spec.is_async and spec.description, name
    assert specs["queue_clear"].metadata.destructive is True
    assert specs["task_status"].metadata.read_only is True


def test_schemas_carry_defaults_enums_and_ranges(specs: dict[str, ToolSpec]) -> None:
    submit = specs["task_submit"].input_schema
    assert submit["required"] == ["task_type"]
    assert submit["properties"]["priority"]["default"] == 1.0
    assert submit["properties"]["payload"]["default"] == {}
    workflow_list = specs["workflow_list"].input_schema["properties"]
    assert (
        workflow_list["limit"]["minimum"],
        workflow_list["limit"]["maximum"],
        workflow_list["limit"]["default"],
    ) == (1, 1000, 50)
    assert specs["task_list"].input_schema["properties"]["limit"]["default"] == 100
    assert specs["workflow_dependencies"].input_schema["properties"]["format"]["enum"] == [
        "json",
        "dot",
        "mermaid",
    ]
    assert specs["queue_clear"].input_schema["properties"]["confirm"]["default"] is False
    assert specs["task_priority"].input_schema["properties"]["requeue"]["default"] is True
    assert specs["queue_resume"].input_schema["properties"]["reorder_by_priority"]["default"] is True
    assert specs["workflow_status"].input_schema["properties"]["include_steps"]["default"] is True
    assert specs["worker_register"].input_schema["properties"]["max_concurrent_tasks"]["default"] == 5
    assert specs["workflow_result"].input_schema["properties"]["include_outputs"]["default"] is True
    with pytest.raises(InvalidArgumentsError, match=r"'limit': Input should be less than or equal to 1000"):
        specs["workflow_list"].parse_arguments({"limit": 1001})
    with pytest.raises(InvalidArgumentsError, match=r"status_filter.*Input should be 'queued'"):
        specs["task_list"].parse_arguments({"status_filter": "done"})
    with pytest.raises(InvalidArgumentsError, match=r"steps\.0\.depends_on"):
        specs["workflow_submit"].parse_arguments(
            {"name": "n", "steps": [{"step_id": "a", "action": "echo", "depends_on": "b"}]}
        )


async def test_outside_the_queue_process_every_tool_says_the_queue_is_not_running(
    specs: dict[str, ToolSpec],
) -> None:
    set_engine(None)
    with pytest.raises(QueueUnavailableError, match=r"^the task queue is not running in this process$"):
        get_engine()
    for spec in specs.values():
        arguments = {
            "task_id": "t",
            "task_type": "x",
            "worker_id": "w",
            "workflow_id": "w",
            "new_priority": 1.0,
            "name": "n",
            "steps": [{"step_id": "a", "action": "x"}],
        }
        wanted = set(spec.input_schema.get("properties", {}))
        kwargs = spec.parse_arguments({k: v for k, v in arguments.items() if k in wanted})
        with pytest.raises(QueueUnavailableError, match="not running in this process"):
            await spec.func(**kwargs)


async def call(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """What the worker does with a call: validate with the tool's model, then run the function."""
    result: dict[str, Any] = await spec.func(**spec.parse_arguments(arguments))
    return result


async def test_every_tool_works_through_its_schema(
    specs: dict[str, ToolSpec], database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        set_engine(engine)
        try:
            t = specs
            submitted = await call(
                t["task_submit"],
                {
                    "task_type": "gate",
                    "payload": {"key": "g"},
                    "task_id": "g1",
                    "priority": 2,
                    "tags": ["x"],
                    "timeout": 30,
                    "retry_policy": {"max_retries": 1, "backoff_factor": 0.01},
                    "metadata": {"by": "test"},
                },
            )
            assert submitted["task_id"] == "g1" and submitted["assigned_worker"] == "fake-0"
            assert (await call(t["task_status"], {"task_id": "g1", "include_logs": True}))[
                "status"
            ] == "running"
            assert (await call(t["task_list"], {"status_filter": ["running"], "tag_filter": ["x"]}))[
                "total_count"
            ] == 1
            assert (await call(t["task_priority"], {"task_id": "g1", "new_priority": 3}))[
                "old_priority"
            ] == 2.0
            assert (await call(t["task_cancel"], {"task_id": "g1", "reason": "test"}))[
                "status"
            ] == "cancelled"
            retried = await call(t["task_retry"], {"task_id": "g1", "retry_config": {"priority": 4}})
            assert retried["retry_count"] == 1
            fake.release("g")
            await wait_status(engine, retried["retry_task_id"], "completed")
            result = await call(t["task_result"], {"task_id": retried["retry_task_id"]})
            assert result["output"] == {"key": "g", "value": None}
            assert (await call(t["queue_pause"], {"reason": "r"}))["paused"] is True
            assert (await call(t["queue_resume"], {"reorder_by_priority": False}))["paused"] is False
            stats = await call(t["queue_stats"], {"include_worker_stats": True, "include_historical": True})
            assert stats["counts"]["completed"] == 1
            assert (await call(t["worker_register"], {"worker_id": "ext-1", "capabilities": ["echo"]}))[
                "live"
            ] is False
            assert (await call(t["worker_status"], {}))["total_workers"] == 2
            assert (await call(t["worker_unregister"], {"worker_id": "ext-1"}))["success"] is True
            workflow = await call(
                t["workflow_submit"],
                {
                    "name": "wf",
                    "workflow_id": "wf1",
                    "tags": ["y"],
                    "steps": [
                        {"step_id": "a", "action": "add", "inputs": {"a": 1, "b": 1}},
                        {
                            "step_id": "b",
                            "action": "echo",
                            "inputs": {"message": "n=${steps.a.output.sum}"},
                            "depends_on": ["a"],
                        },
                    ],
                },
            )
            assert workflow["levels"] == [["a"], ["b"]]
            await wait_workflow(engine, "wf1", "completed")
            assert (await call(t["workflow_status"], {"workflow_id": "wf1", "include_metrics": True}))[
                "status"
            ] == "completed"
            assert (await call(t["workflow_list"], {"status_filter": "completed", "limit": 10}))[
                "total_count"
            ] == 1
            graph = await call(t["workflow_dependencies"], {"workflow_id": "wf1", "format": "mermaid"})
            assert graph["dag"].startswith("flowchart LR")
            assert (await call(t["workflow_result"], {"workflow_id": "wf1"}))["outputs"]["b"] == {
                "message": "n=2"
            }
            assert (await call(t["workflow_cancel"], {"workflow_id": "wf1"}))["success"] is False
            cleared = await call(
                t["queue_clear"], {"status_filter": ["completed", "cancelled"], "confirm": True}
            )
            assert cleared["deleted"] == 4
        finally:
            set_engine(None)
