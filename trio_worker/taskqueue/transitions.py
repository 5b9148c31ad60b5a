"""The state machine of tasks, workflow steps and workflows, as synchronous functions on a ``Changes``.

Task: ``queued -> running -> completed | failed | cancelled``, with ``running -> queued`` for a retry (or
a "server busy" answer or a quarantined tool's refusal, which do not count as an attempt: ``held_back``)
and ``queued -> cancelled``. Every terminal
state is reached exactly once: a function that ends a task first checks it is still unfinished.

A task that belongs to a workflow step drives its step; a step that ends advances its workflow (starting
the steps that became ready, failing or cancelling those that can no longer run); a workflow that ends
starts or fails the workflows that depend on it. All of that happens in the same ``Changes``, so it is
committed in the same transaction as the task's own change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.errors import is_quarantine_refusal

from . import rows
from .errors import InvalidRequestError
from .models import RetryPolicy
from .payload import check_arguments
from .records import Attempt, Backoff, StepRecord, TaskRecord, WorkflowRecord
from .scheduling import busy_delay, retry_delay
from .sizes import over_limit
from .state import Changes
from .workflows import Graph, output_of, resolve, result_text, topological_order


def default_retry(entry: dict[str, Any] | None) -> tuple[int, float, Backoff]:
    """The retry policy of a task submitted without one: from its tool's ``retry_policy`` metadata.

    ``"none"`` (the default of every tool) means no retries — a tool that is not known to be safe to run
    twice is run once; ``"exponential"`` and ``"linear"`` mean 3 retries starting at 1 s.
    """
    policy = ((entry or {}).get("metadata") or {}).get("retry_policy", "none")
    if policy == "exponential":
        return 3, 1.0, "exponential"
    if policy == "linear":
        return 3, 1.0, "linear"
    return 0, 1.0, "exponential"


def retry_settings(policy: RetryPolicy | None, entry: dict[str, Any]) -> tuple[int, float, Backoff]:
    """The retry settings of a new task: ``policy`` (always exponential) or the tool's default."""
    if policy is None:
        return default_retry(entry)
    return policy.max_retries, policy.backoff_factor, "exponential"


def new_task(
    c: Changes,
    *,
    task_id: str,
    task_type: str,
    payload: dict[str, Any],
    priority: float,
    tags: list[str],
    timeout: float | None,
    max_retries: int,
    backoff_factor: float,
    backoff: Backoff,
    metadata: dict[str, Any],
    delay: float = 0.0,
    retry_of: str | None = None,
    retry_count: int = 0,
    workflow_id: str | None = None,
    step_id: str | None = None,
) -> TaskRecord:
    """A new queued task (it may start only after ``delay`` seconds)."""
    seq = c.state.take_seq()
    task = TaskRecord(
        task_id=task_id,
        seq=seq,
        task_type=task_type,
        payload=payload,
        priority=priority,
        order_priority=priority,
        order_seq=seq,
        tags=tags,
        timeout=timeout,
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        backoff=backoff,
        metadata=metadata,
        status="queued",
        submitted_at=c.now,
        queued_at=c.now,
        not_before=c.now + delay if delay > 0 else None,
        retry_of=retry_of,
        retry_count=retry_count,
        workflow_id=workflow_id,
        step_id=step_id,
    )
    c.put_task(task)
    if delay > 0:
        c.delays[task_id] = delay
    origin = f" for step {step_id!r} of workflow {workflow_id!r}" if workflow_id else ""
    origin += f" as retry {retry_count} of {retry_of!r}" if retry_of else ""
    c.log(task_id, f"submitted{origin}: {task_type} with priority {priority:g}")
    return task


def start_attempt(c: Changes, task: TaskRecord, executor_id: str) -> TaskRecord:
    """``queued -> running`` on ``executor_id``: counts an attempt and opens its attempt row."""
    attempt = task.attempts + 1
    running = replace(
        task,
        status="running",
        attempts=attempt,
        worker_id=executor_id,
        started_at=c.now,
        first_started_at=task.first_started_at if task.first_started_at is not None else c.now,
        not_before=None,
        progress=0.0,
        progress_message=None,
        error=None,
        claimed_by=c.owner,
        cancel_requested=None,
    )
    c.put_task(running)
    c.write(rows.add_attempt(Attempt(task.task_id, attempt, task.task_type, executor_id, c.now)))
    c.log(task.task_id, f"attempt {attempt} of {task.max_retries + 1} started on {executor_id}")
    c.started.append((running, executor_id))
    if running.workflow_id and running.step_id:
        step = c.step(running.workflow_id, running.step_id)
        if step is not None:
            c.put_step(
                replace(
                    step,
                    status="running",
                    worker_id=executor_id,
                    started_at=step.started_at if step.started_at is not None else c.now,
                )
            )
    return running


def _end_attempt(c: Changes, task: TaskRecord, outcome: str, error: str | None) -> None:
    c.write(rows.finish_attempt(task.task_id, task.attempts, c.now, outcome, error))


def attempt_succeeded(c: Changes, task: TaskRecord, result: dict[str, Any]) -> None:
    """``running -> completed`` with the tool's result."""
    _end_attempt(c, task, "completed", None)
    done = replace(task, status="completed", result=result, progress=100.0, ended_at=c.now, error=None)
    c.put_task(done)
    if task.started_at is not None:
        c.durations.append((task.task_type, max(0.0, c.now - task.started_at)))
    c.log(task.task_id, f"attempt {task.attempts} completed")
    task_ended(c, done)


def attempt_failed(c: Changes, task: TaskRecord, error: str, *, retryable: bool = True) -> None:
    """A failed attempt: ``running -> queued`` with a backoff delay while retries are left, else ``failed``."""
    _end_attempt(c, task, "failed", error)
    retries_used = task.attempts - 1
    if retryable and retries_used < task.max_retries:
        delay = retry_delay(retries_used + 1, task.backoff_factor, task.backoff, c.rng)
        _requeue(c, task, delay, result_error=error)
        c.log(
            task.task_id,
            f"attempt {task.attempts} failed: {error}; retry {retries_used + 1} of {task.max_retries} "
            f"in {delay:.3g} s",
            "warning",
        )
        return
    why = "" if retryable else " (not retried: the same call would be refused again)"
    failed = replace(task, status="failed", error=error, ended_at=c.now)
    c.put_task(failed)
    c.log(task.task_id, f"attempt {task.attempts} failed: {error}; the task failed{why}", "error")
    task_ended(c, failed)


def held_back(message: str) -> bool:
    """Whether an attempt's ``isError`` text says the server did not run the tool for now: "server busy",
    or the tool is quarantined (it kept killing its worker; the quarantine ends by itself). Such an
    attempt is tried again later without being counted (``attempt_busy``)."""
    return message.startswith("server busy") or is_quarantine_refusal(message)


def attempt_busy(c: Changes, task: TaskRecord, message: str) -> None:
    """The server did not run the attempt for now (``held_back``): back to the queue, the attempt not
    counted."""
    _end_attempt(c, task, "busy", message)
    delay = busy_delay(task.busy_retries + 1, c.rng)
    _requeue(c, replace(task, attempts=task.attempts - 1, busy_retries=task.busy_retries + 1), delay)
    why = message if is_quarantine_refusal(message) else f"server busy ({message})"
    c.log(task.task_id, f"{why}; trying again in {delay:.3g} s (not counted)", "warning")


def _requeue(c: Changes, task: TaskRecord, delay: float, result_error: str | None = None) -> None:
    queued = replace(
        task,
        status="queued",
        order_priority=task.priority,
        queued_at=c.now,
        not_before=c.now + delay,
        error=result_error,
        progress=None,
    )
    c.put_task(queued)
    c.delays[task.task_id] = delay
    if task.workflow_id and task.step_id:
        step = c.step(task.workflow_id, task.step_id)
        if step is not None:
            c.put_step(replace(step, status="queued"))


def cancel(c: Changes, task: TaskRecord, reason: str, *, attempt_open: bool = False) -> None:
    """``queued | running -> cancelled``. ``attempt_open``: the attempt is still running and its runner
    will close the attempt row when it stops (a forced cancel)."""
    if task.status == "running" and not attempt_open:
        _end_attempt(c, task, "cancelled", reason)
    cancelled = replace(task, status="cancelled", cancel_reason=reason, ended_at=c.now)
    c.put_task(cancelled)
    c.log(task.task_id, f"cancelled: {reason}", "warning")
    task_ended(c, cancelled)


def interrupted(c: Changes, task: TaskRecord, error: str | None = None) -> None:
    """Recovery of a task that was running when the task queue stopped (or whose engine lost its lease:
    ``error`` says so): the run counts as an attempt; re-queued with backoff while retries are left, else
    failed."""
    error = error or f"interrupted: the task queue stopped while attempt {task.attempts} was running"
    c.write(rows.close_open_attempts(task.task_id, c.now, "interrupted", error))
    retries_used = task.attempts - 1
    if retries_used < task.max_retries:
        delay = retry_delay(retries_used + 1, task.backoff_factor, task.backoff, c.rng)
        _requeue(c, task, delay, result_error=error)
        c.log(
            task.task_id,
            f"{error}; retry {retries_used + 1} of {task.max_retries} in {delay:.3g} s",
            "warning",
        )
        return
    failed = replace(task, status="failed", error=f"{error}; no retries left", ended_at=c.now)
    c.put_task(failed)
    c.log(task.task_id, f"{error}; no retries left: the task failed", "error")
    task_ended(c, failed)


# -- workflows ------------------------------------------------------------------------------------


def task_ended(c: Changes, task: TaskRecord) -> None:
    """A task reached its terminal state: if it runs a workflow step, end the step and advance."""
    if not (task.workflow_id and task.step_id):
        return
    step = c.step(task.workflow_id, task.step_id)
    workflow = c.workflow(task.workflow_id)
    if step is None or workflow is None or step.status in ("completed", "failed", "cancelled"):
        return
    output = output_of(task.result or {}) if task.status == "completed" else None
    too_large = over_limit(f"the output of step {step.step_id!r}", output, c.step_limit) if output else None
    if too_large is not None:  # not kept: it would become a later step's input
        ended = replace(step, status="failed", error=too_large, ended_at=c.now)
        c.log(task.task_id, f"{too_large}: the step failed", "error")
    elif task.status == "completed":
        ended = replace(step, status="completed", output=output, ended_at=c.now)
    elif task.status == "failed":
        ended = replace(step, status="failed", error=task.error, ended_at=c.now)
    else:
        ended = replace(step, status="cancelled", error=f"cancelled: {task.cancel_reason}", ended_at=c.now)
    c.put_step(ended)
    advance_workflow(c, task.workflow_id)


def graph_of(steps: dict[str, StepRecord]) -> Graph:
    return Graph(tuple(steps), {step_id: tuple(step.depends_on) for step_id, step in steps.items()})


def advance_workflow(c: Changes, workflow_id: str) -> None:
    """Start every pending step whose dependencies all completed; fail (cancel) every pending step with a
    failed (cancelled) dependency; cancel pending steps of a workflow being cancelled; end the workflow
    when no step is left to run. Independent steps keep running after a failure."""
    workflow = c.workflow(workflow_id)
    if workflow is None or workflow.status != "running":
        return
    steps = c.steps_of(workflow_id)
    for step_id in topological_order(graph_of(steps)):
        step = steps[step_id]
        if step.status != "pending":
            continue
        failed = next((d for d in step.depends_on if steps[d].status == "failed"), None)
        cancelled = next((d for d in step.depends_on if steps[d].status == "cancelled"), None)
        if failed is not None:
            steps[step_id] = _skip(c, step, "failed", f"not run: dependency {failed!r} failed")
        elif cancelled is not None:
            steps[step_id] = _skip(c, step, "cancelled", f"not run: dependency {cancelled!r} was cancelled")
        elif workflow.cancel_reason is not None:
            steps[step_id] = _skip(
                c, step, "cancelled", f"not run: workflow cancelled ({workflow.cancel_reason})"
            )
        elif all(steps[d].status == "completed" for d in step.depends_on):
            steps[step_id] = _start_step(c, workflow, step, steps)
    if all(step.status in ("completed", "failed", "cancelled") for step in steps.values()):
        finish_workflow(c, workflow, steps)


def _skip(c: Changes, step: StepRecord, status: str, error: str) -> StepRecord:
    skipped = replace(step, status=status, error=error, ended_at=c.now)
    c.put_step(skipped)
    return skipped


def _start_step(
    c: Changes, workflow: WorkflowRecord, step: StepRecord, steps: dict[str, StepRecord]
) -> StepRecord:
    """Resolve the step's references, check its inputs against its tool and queue its task; a reference
    that does not resolve, or inputs the tool refuses, fail the step instead."""
    outputs = {step_id: s.output for step_id, s in steps.items() if s.status == "completed"}
    try:
        payload = resolve(step.inputs, outputs)
        if c.catalog is not None:
            entry = c.catalog.get(step.action)
            if entry is None:
                raise InvalidRequestError(f"action: unknown tool {step.action!r}")
            check_arguments(entry.get("inputSchema"), payload, "inputs")
        too_large = over_limit("inputs", payload, c.step_limit)
        if too_large is not None:
            raise InvalidRequestError(too_large)
    except InvalidRequestError as exc:
        return _skip(c, step, "failed", f"inputs refused when the step became ready: {exc}")
    task_id = f"{workflow.workflow_id}/{step.step_id}"
    new_task(
        c,
        task_id=task_id,
        task_type=step.action,
        payload=payload,
        priority=workflow.priority,
        tags=list(workflow.tags),
        timeout=step.timeout,
        max_retries=step.max_retries,
        backoff_factor=step.backoff_factor,
        backoff=step.backoff,
        metadata={},
        workflow_id=workflow.workflow_id,
        step_id=step.step_id,
    )
    queued = replace(step, status="queued", task_id=task_id)
    c.put_step(queued)
    return queued


def finish_workflow(c: Changes, workflow: WorkflowRecord, steps: dict[str, StepRecord]) -> None:
    """End a workflow whose steps all ended: cancelled if it was being cancelled, completed if every step
    completed, else failed (naming the first step that failed by itself); then start or fail the
    workflows that wait for it."""
    if workflow.cancel_reason is not None:
        status, error = "cancelled", None
    elif all(step.status == "completed" for step in steps.values()):
        status, error = "completed", None
    else:
        culprit = next(
            (s for s in steps.values() if s.status == "failed" and not (s.error or "").startswith("not run")),
            None,
        ) or next(s for s in steps.values() if s.status != "completed")
        status = "failed"
        if culprit.status == "failed":
            error = f"step {culprit.step_id!r} failed: {culprit.error}"
        else:  # its error reads "cancelled: <reason>" or "not run: ..."
            error = f"step {culprit.step_id!r} {culprit.error}"
    ended = replace(workflow, status=status, error=error, ended_at=c.now)
    c.put_workflow(ended)
    for other in c.active_workflows():
        if other.status == "pending" and workflow.workflow_id in other.dependencies:
            start_workflow_if_ready(c, other)


def start_workflow_if_ready(
    c: Changes, workflow: WorkflowRecord, known: dict[str, str] | None = None
) -> None:
    """Start a pending workflow once every workflow it depends on completed; fail it when one of them
    failed or was cancelled (its steps are then cancelled without running).

    A dependency that is neither unfinished nor in ``known`` has completed: a dependency that failed or
    was cancelled fails its dependants at that moment, so only completed ones are left behind.
    """
    statuses = {}
    for dependency in workflow.dependencies:
        current = c.workflow(dependency)
        statuses[dependency] = (
            current.status if current is not None else (known or {}).get(dependency, "completed")
        )
    broken = next((d for d, s in statuses.items() if s in ("failed", "cancelled")), None)
    if broken is not None:
        steps = c.steps_of(workflow.workflow_id)
        for step_id, step in steps.items():
            steps[step_id] = _skip(
                c, step, "cancelled", f"not run: dependency workflow {broken!r} {statuses[broken]}"
            )
        failed = replace(
            workflow,
            status="failed",
            error=f"dependency workflow {broken!r} {statuses[broken]}",
            ended_at=c.now,
        )
        c.put_workflow(failed)
        for other in c.active_workflows():
            if other.status == "pending" and workflow.workflow_id in other.dependencies:
                start_workflow_if_ready(c, other)
        return
    if all(s == "completed" for s in statuses.values()):
        c.put_workflow(replace(workflow, status="running", started_at=c.now))
        advance_workflow(c, workflow.workflow_id)


def cancel_workflow(c: Changes, workflow: WorkflowRecord, reason: str, *, force: bool) -> list[str]:
    """Cancel a workflow: pending steps and queued step tasks at once; running step tasks too when
    ``force``, otherwise they are returned for the engine to cancel in their workers (the workflow then
    ends when they have stopped). Returns the ids of the running tasks to cancel."""
    marked = replace(workflow, cancel_reason=reason)
    c.put_workflow(marked)
    if workflow.status == "pending":
        steps = c.steps_of(workflow.workflow_id)
        for step_id, step in steps.items():
            steps[step_id] = _skip(c, step, "cancelled", f"not run: workflow cancelled ({reason})")
        finish_workflow(c, marked, steps)
        return []
    to_stop: list[str] = []
    for step in c.steps_of(workflow.workflow_id).values():
        task = c.task(step.task_id) if step.task_id else None
        if task is None or task.status not in ("queued", "running"):
            continue
        if task.status == "queued":
            cancel(c, task, f"workflow cancelled ({reason})")
        else:
            to_stop.append(task.task_id)
            if force:
                cancel(c, task, f"workflow cancelled ({reason})", attempt_open=True)
    advance_workflow(c, workflow.workflow_id)
    return to_stop


def error_of(result: dict[str, Any]) -> str:
    """The one-line error of an ``isError`` result."""
    return result_text(result)
