"""The 20 task-queue, workflow and executor tools, served by the ``trio-queue`` worker process.

Each tool checks nothing itself beyond its type hints: it hands its arguments to the engine of this
process (``get_engine()``), which validates them, commits what changes and answers with a JSON object.
Errors are exceptions with one line naming the field; the worker turns them into ``isError`` results.
Outside the queue worker process (no engine set) every tool fails with "the task queue is not running in
this process".
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from shared.metadata import tool_metadata

from .current import get_engine
from .models import (
    TASK_LIST_MAX,
    WORKFLOW_LIST_MAX,
    GraphFormat,
    Id,
    Priority,
    RetryConfig,
    RetryPolicy,
    TaskRef,
    TaskStatus,
    Timeout,
    WorkflowStatus,
    WorkflowStep,
)

Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], Field(max_length=64)]
Reason = Annotated[str | None, Field(max_length=1000, description="Why; recorded in the task's log")]
Offset = Annotated[int, Field(ge=0, description="How many matches to skip")]
Object = dict[str, Any]


# -- tasks -------------------------------------------------------------------------------------------


@tool_metadata(
    runtime="trio", requires_p2p=True, category="taskqueue", title="Submit a task", open_world=False
)
async def task_submit(
    task_type: Annotated[str, Field(min_length=1, max_length=128, description="The tool to run")],
    payload: Annotated[
        Object, Field(description="The tool's arguments; checked against its input schema now")
    ] = {},  # noqa: B006
    task_id: Annotated[Id | None, Field(description="Your id for the task; generated when left out")] = None,
    priority: Priority = 1.0,
    tags: Annotated[Tags, Field(description="Labels to filter by")] = [],  # noqa: B006
    timeout: Timeout | None = None,
    retry_policy: Annotated[
        RetryPolicy | None,
        Field(
            description="Retries of a failed attempt; default: the tool's own retry_policy (none: no retries)"
        ),
    ] = None,
    metadata: Annotated[Object, Field(description="Anything you want kept with the task")] = {},  # noqa: B006
) -> dict[str, Any]:
    """Queue a deferred call of a tool (task_type) with payload as its arguments; it runs on a worker
    process in priority order (higher first, first in first out among equals), with the timeout and
    retries given, and survives restarts. Returns task_id, status, queue_position, estimated_start_time
    (null when no measurement allows an estimate) and assigned_worker (when it started at once)."""
    return await get_engine().task_submit(
        task_type,
        payload,
        task_id=task_id,
        priority=priority,
        tags=tags,
        timeout=timeout,
        retry_policy=retry_policy,
        metadata=metadata,
    )


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="Task status",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def task_status(
    task_id: TaskRef,
    include_logs: Annotated[bool, Field(description="Add the task's log lines")] = False,
    include_metrics: Annotated[bool, Field(description="Add wait/execution times and every attempt")] = False,
) -> dict[str, Any]:
    """The state of a task: status (queued, running, completed, failed, cancelled), progress 0-100 from
    the tool's progress reports, worker_id, start/end times, queue_position, estimated_start_time and,
    while it waits, waiting_reason."""
    return await get_engine().task_status(task_id, include_logs, include_metrics)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="Cancel a task",
    timeout_seconds=60.0,
    open_world=False,
)
async def task_cancel(
    task_id: TaskRef,
    reason: Reason = None,
    force: Annotated[bool, Field(description="Do not wait for a running call's cleanup")] = False,
) -> dict[str, Any]:
    """Cancel a task: a queued one at once; a running one in its worker through the router (waiting until
    the call stopped, unless force). A task that already ended is reported with success false."""
    return await get_engine().task_cancel(task_id, reason, force)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="List tasks",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def task_list(
    status_filter: Annotated[
        TaskStatus | list[TaskStatus] | None, Field(description="Only tasks in this status (or these)")
    ] = None,
    worker_filter: Annotated[str | None, Field(description="Only tasks run on this executor")] = None,
    tag_filter: Annotated[Tags | None, Field(description="Only tasks that have all these tags")] = None,
    priority_min: Annotated[
        float | None, Field(allow_inf_nan=False, description="Only this priority or higher")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=TASK_LIST_MAX, description="At most this many tasks")] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """List tasks, newest first (in queue order when status_filter is only queued). Returns tasks,
    total_count, returned_count and has_more."""
    return await get_engine().task_list(status_filter, worker_filter, tag_filter, priority_min, limit, offset)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="Change a task's priority",
    open_world=False,
)
async def task_priority(
    task_id: TaskRef,
    new_priority: Priority,
    requeue: Annotated[
        bool,
        Field(
            description="Move a queued task to the place of its new priority (false: keep its place for now)"
        ),
    ] = True,
) -> dict[str, Any]:
    """Change the priority of a queued or running task. Returns old_priority, new_priority and
    new_queue_position."""
    return await get_engine().task_priority(task_id, new_priority, requeue)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="Task result",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def task_result(
    task_id: TaskRef,
    include_output: Annotated[bool, Field(description="Add the tool's result and output")] = True,
    include_logs: Annotated[bool, Field(description="Add the task's log lines")] = False,
    include_payload: Annotated[bool, Field(description="Add the task's whole payload")] = False,
) -> dict[str, Any]:
    """The outcome of a task: result (the tool's CallToolResult), output (its structured content or text),
    logs and execution_time; result and output are null until the task ended. Always whole: task_status
    and workflow_result clip large values and point here."""
    return await get_engine().task_result(task_id, include_output, include_logs, include_payload)


@tool_metadata(
    runtime="trio", requires_p2p=True, category="taskqueue", title="Retry a task", open_world=False
)
async def task_retry(
    task_id: TaskRef,
    retry_config: Annotated[
        RetryConfig | None,
        Field(description="Changes for the new task (max_retries, backoff_factor, priority, timeout, delay)"),
    ] = None,
) -> dict[str, Any]:
    """Run a failed or cancelled task again as a new task linked to it. Returns retry_task_id and
    retry_count (1 for the first retry of a task, 2 for a retry of that retry, ...)."""
    return await get_engine().task_retry(task_id, retry_config)


# -- the queue ---------------------------------------------------------------------------------------


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="Queue statistics",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def queue_stats(
    include_worker_stats: Annotated[bool, Field(description="Add every executor's figures")] = False,
    include_historical: Annotated[
        bool, Field(description="Add hourly figures for 24 h and per task type")
    ] = False,
) -> dict[str, Any]:
    """Counts of tasks per status, average wait and execution time and throughput (tasks per minute over
    the last 1, 5 and 60 minutes), all from recorded timestamps."""
    return await get_engine().queue_stats(include_worker_stats, include_historical)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="Pause the queue",
    idempotent=True,
    open_world=False,
)
async def queue_pause(reason: Reason = None) -> dict[str, Any]:
    """Stop starting queued tasks (running ones finish; new tasks are still accepted). Stays paused across
    restarts until queue_resume."""
    return await get_engine().queue_pause(reason)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="Resume the queue",
    idempotent=True,
    open_world=False,
)
async def queue_resume(
    reorder_by_priority: Annotated[
        bool, Field(description="Place tasks whose priority changed with requeue=false by their new priority")
    ] = True,
) -> dict[str, Any]:
    """Start queued tasks again."""
    return await get_engine().queue_resume(reorder_by_priority)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="taskqueue",
    title="Clear the queue",
    destructive=True,
    open_world=False,
)
async def queue_clear(
    status_filter: Annotated[
        TaskStatus | list[TaskStatus] | None,
        Field(description="Statuses to clear (default: queued); running tasks cannot be cleared"),
    ] = None,
    confirm: Annotated[bool, Field(description="Must be true: nothing is cleared otherwise")] = False,
) -> dict[str, Any]:
    """Clear tasks: queued ones are cancelled, finished ones (completed, failed, cancelled) deleted with
    their logs. Without confirm=true nothing changes and the error says what would be cleared."""
    return await get_engine().queue_clear(status_filter, confirm)


# -- executors ---------------------------------------------------------------------------------------


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="workers",
    title="Register an executor",
    idempotent=True,
    open_world=False,
)
async def worker_register(
    worker_id: Id,
    capabilities: Annotated[Tags, Field(description="Task types (tool names) it runs")] = [],  # noqa: B006
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=1000, description="Tasks it runs at once")] = 5,
    resource_limits: Annotated[Object, Field(description="Recorded and shown; not enforced")] = {},  # noqa: B006
    metadata: Object = {},  # noqa: B006
) -> dict[str, Any]:
    """Declare an executor. With the id of a worker process of this server (see worker_status) it sets its
    concurrency limit and can narrow its capabilities; with another id it is an executor without a live
    process, and tasks only it could run stay queued, with that reason, until one appears."""
    return await get_engine().worker_register(
        worker_id, capabilities, max_concurrent_tasks, resource_limits, metadata
    )


@tool_metadata(
    runtime="trio", requires_p2p=True, category="workers", title="Unregister an executor", open_world=False
)
async def worker_unregister(worker_id: Id) -> dict[str, Any]:
    """Remove an executor's registration; its running tasks finish."""
    return await get_engine().worker_unregister(worker_id)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="workers",
    title="Executor status",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def worker_status(
    worker_id: Annotated[Id | None, Field(description="One executor; all when left out")] = None,
) -> dict[str, Any]:
    """The executors: this server's worker processes (their tools as capabilities, live in-flight counts)
    and registered executors (marked when no live process is behind them), with the queue's tasks on each."""
    return await get_engine().worker_status(worker_id)


# -- workflows ---------------------------------------------------------------------------------------


@tool_metadata(
    runtime="trio", requires_p2p=True, category="workflow", title="Submit a workflow", open_world=False
)
async def workflow_submit(
    name: Annotated[str, Field(min_length=1, max_length=200)],
    steps: Annotated[
        list[WorkflowStep],
        Field(
            min_length=1,
            max_length=1000,
            description=(
                "The steps; each runs once the steps in its depends_on completed. Inputs may use earlier "
                'outputs: "${steps.<step_id>.output.<key>}"'
            ),
        ),
    ],
    workflow_id: Annotated[Id | None, Field(description="Your id; generated when left out")] = None,
    priority: Priority = 1.0,
    tags: Tags = [],  # noqa: B006
    dependencies: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=128)]],
        Field(max_length=1000, description="Workflow ids that must complete before this one starts"),
    ] = [],  # noqa: B006
    metadata: Object = {},  # noqa: B006
) -> dict[str, Any]:
    """Submit a workflow: a DAG of tool calls. It is checked first (unknown steps or tools, cycles such
    as "cycle: a -> b -> a", inputs the tools refuse); steps run in parallel as soon as their
    dependencies completed; a failed step fails its dependants and the workflow, while independent steps
    still finish."""
    return await get_engine().workflow_submit(
        name,
        steps,
        workflow_id=workflow_id,
        priority=priority,
        tags=tags,
        dependencies=dependencies,
        metadata=metadata,
    )


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="workflow",
    title="Workflow status",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def workflow_status(
    workflow_id: Id,
    include_steps: Annotated[bool, Field(description="Add every step's state")] = True,
    include_metrics: Annotated[bool, Field(description="Add times and the critical path")] = False,
) -> dict[str, Any]:
    """The state of a workflow (pending, running, completed, failed, cancelled), its progress and steps."""
    return await get_engine().workflow_status(workflow_id, include_steps, include_metrics)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="workflow",
    title="Cancel a workflow",
    timeout_seconds=60.0,
    open_world=False,
)
async def workflow_cancel(
    workflow_id: Id,
    reason: Reason = None,
    force: Annotated[bool, Field(description="Do not wait for running steps' cleanup")] = False,
) -> dict[str, Any]:
    """Cancel a workflow: steps not started are cancelled and running steps cancelled in their workers."""
    return await get_engine().workflow_cancel(workflow_id, reason, force)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="workflow",
    title="List workflows",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def workflow_list(
    status_filter: Annotated[
        WorkflowStatus | list[WorkflowStatus] | None,
        Field(description="Only workflows in this status (or these)"),
    ] = None,
    peer_filter: Annotated[
        str | None, Field(description="Only workflows with a step run on this executor")
    ] = None,
    tag_filter: Annotated[Tags | None, Field(description="Only workflows that have all these tags")] = None,
    limit: Annotated[int, Field(ge=1, le=WORKFLOW_LIST_MAX, description="At most this many workflows")] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """List workflows, newest first, with total_count, returned_count and has_more."""
    return await get_engine().workflow_list(status_filter, peer_filter, tag_filter, limit, offset)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="workflow",
    title="Workflow graph",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def workflow_dependencies(
    workflow_id: Id,
    format: Annotated[GraphFormat, Field(description="json, dot (Graphviz) or mermaid (flowchart)")] = "json",
) -> dict[str, Any]:
    """The workflow's DAG: dag (in the format asked), nodes, edges and the critical_path from measured
    durations (null while a step's duration cannot be known)."""
    return await get_engine().workflow_dependencies(workflow_id, format)


@tool_metadata(
    runtime="trio",
    requires_p2p=True,
    category="workflow",
    title="Workflow result",
    read_only=True,
    idempotent=True,
    open_world=False,
)
async def workflow_result(
    workflow_id: Id,
    include_outputs: Annotated[bool, Field(description="Add every completed step's output")] = True,
    include_logs: Annotated[bool, Field(description="Add every step's log lines")] = False,
) -> dict[str, Any]:
    """The outcome of a workflow: outputs of its steps, final_outputs (of the steps nothing depends on),
    errors per step and execution_time."""
    return await get_engine().workflow_result(workflow_id, include_outputs, include_logs)


TOOLS = (
    task_submit,
    task_status,
    task_cancel,
    task_list,
    task_priority,
    task_result,
    queue_stats,
    queue_pause,
    queue_resume,
    queue_clear,
    task_retry,
    worker_register,
    worker_unregister,
    worker_status,
    workflow_submit,
    workflow_status,
    workflow_cancel,
    workflow_list,
    workflow_dependencies,
    workflow_result,
)
"""The 20 tools, in the order the specification lists them."""

from . import protocol_entries as protocol_entries  # noqa: E402  (registers the six tasks:* entries)
