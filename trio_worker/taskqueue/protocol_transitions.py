"""The state machine of protocol tasks (MCP tasks, ``origin = "mcp"``), on the same ``Changes`` as the rest.

A protocol task is a row of the one queue: it is queued, started by the scheduler and run by a runner like
any task, and these functions decide how its runs end::

  queued ──► running ──► completed        any CallToolResult, isError or not (a tool error is a result)
    ▲  ▲        │  ├───► failed           a protocol error (the call was refused, the executor raised, no
    │  │        │  │                      answer), or a crash during a run that may not run again
    │  └────────┘  └───► input_required   the run asked the client for input; parked, not runnable
    │  busy, or a crash (run_again)              │
    └────────────────────────────────────────────┘ every pending input request answered (tasks:update)
  queued | running | input_required ──► cancelled (tasks:cancel, task_cancel)

A protocol task never retries a run that ended: ``max_retries`` is 0 and a tool error is its result. A
"server busy" answer or a quarantined tool's refusal re-queues it without counting, as for every task. Every function here first checks
the task is still in the state it expects, so a race (a cancel and an answer) is decided by whichever
commits first.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import rows
from . import transitions as tr
from .records import TaskRecord
from .state import Changes

ORIGIN = "mcp"
"""``TaskRecord.origin`` of a protocol task."""
INTERNAL_ERROR = -32603


def new_protocol_task(
    c: Changes,
    *,
    task_id: str,
    tool: str,
    arguments: dict[str, Any],
    client: dict[str, Any],
    answers: dict[str, Any],
    run_again: bool,
) -> TaskRecord:
    """A new queued protocol task (written with a plain INSERT: an id taken in the database fails)."""
    seq = c.state.take_seq()
    task = TaskRecord(
        task_id=task_id,
        seq=seq,
        task_type=tool,
        payload=arguments,
        priority=1.0,
        order_priority=1.0,
        order_seq=seq,
        tags=[],
        timeout=None,
        max_retries=0,
        backoff_factor=1.0,
        backoff="exponential",
        metadata={},
        status="queued",
        submitted_at=c.now,
        queued_at=c.now,
        origin=ORIGIN,
        client=client,
        answers=answers,
        run_again=run_again,
    )
    c.put_task(task)
    c.created.add(task_id)
    c.log(task_id, f"created by tasks/create: {tool}")
    return task


def run_returned(c: Changes, task: TaskRecord, reply: dict[str, Any]) -> None:
    """A run answered ``reply``: an ``input_required`` reply parks the task, a "server busy" or quarantine
    error result re-queues it (not counted: ``transitions.held_back``), any other CallToolResult
    completes it."""
    if reply.get("resultType") == "input_required":
        requests = reply.get("inputRequests")
        asked = reply.get("asked")
        input_required(
            c,
            task,
            dict(requests) if isinstance(requests, dict) else {},
            dict(asked) if isinstance(asked, dict) else {},
        )
    elif reply.get("isError") and tr.held_back(tr.error_of(reply)):
        tr.attempt_busy(c, task, tr.error_of(reply))
    else:
        tr.attempt_succeeded(c, task, reply)


def input_required(c: Changes, task: TaskRecord, pending: dict[str, Any], asked: dict[str, Any]) -> None:
    """``running -> input_required``: the run ended asking for ``pending``; it waits for the answers."""
    c.write(rows.finish_attempt(task.task_id, task.attempts, c.now, "input_required", None))
    if not pending:  # nothing to wait for: run again at once rather than park forever
        _queue_again(c, task)
        c.log(task.task_id, f"attempt {task.attempts} asked for no input; queued again", "warning")
        return
    parked = replace(task, status="input_required", pending=pending, asked=asked)
    c.put_task(parked)
    c.log(task.task_id, f"attempt {task.attempts} needs input: {', '.join(sorted(pending))}")


def run_failed(c: Changes, task: TaskRecord, code: int, message: str, data: Any = None) -> None:
    """``running -> failed`` with the JSON-RPC error object ``{code, message(, data)}``."""
    c.write(rows.finish_attempt(task.task_id, task.attempts, c.now, "failed", message))
    fail(c, task, code, message, data)


def fail(c: Changes, task: TaskRecord, code: int, message: str, data: Any = None) -> None:
    """End a protocol task ``failed`` (its attempt row already closed)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    failed = replace(task, status="failed", error=message, error_object=error, ended_at=c.now)
    c.put_task(failed)
    c.log(task.task_id, f"the task failed: {message}", "error")


def answer(c: Changes, task: TaskRecord, responses: dict[str, Any]) -> bool:
    """``tasks:update``: store the responses to pending requests (other keys are ignored); when nothing is
    pending any more, ``input_required -> queued`` (the tool runs again from the start with every answer).
    Returns whether anything changed; a task in another state is left as it is."""
    if task.status != "input_required":
        return False
    pending = dict(task.pending or {})
    asked = dict(task.asked or {})
    answers = dict(task.answers or {})
    taken = [key for key in responses if key in pending]
    if not taken:
        return False
    for key in taken:
        answers[key] = {"q": asked.get(key), "r": responses[key]}
        del pending[key]
    changed = replace(task, answers=answers, pending=pending)
    if pending:
        c.put_task(changed)
        c.log(task.task_id, f"answered: {', '.join(sorted(taken))}; still waiting for {len(pending)}")
    else:
        _queue_again(c, replace(changed, pending=None, asked=None))
        c.log(task.task_id, f"answered: {', '.join(sorted(taken))}; queued to run again")
    return True


def interrupted(c: Changes, task: TaskRecord, error: str | None = None, why: str | None = None) -> None:
    """Recovery of a protocol task that was running when the engine stopped (or whose engine lost its
    lease: ``error`` and ``why`` say so): queued again at once when its tool is idempotent or read-only
    (``run_again``; nothing is consumed), else failed — it must not run twice."""
    error = error or f"interrupted: the task queue stopped while attempt {task.attempts} was running"
    c.write(rows.close_open_attempts(task.task_id, c.now, "interrupted", error))
    if task.run_again:
        _queue_again(c, task)
        c.log(task.task_id, f"{error}; its tool may run again: queued again", "warning")
        return
    why = why or f"the server restarted while task {task.task_id} was running"
    fail(
        c,
        task,
        INTERNAL_ERROR,
        f"{why}; tool {task.task_type!r} is neither idempotent nor read-only, so it was not run again",
    )


def _queue_again(c: Changes, task: TaskRecord) -> None:
    queued = replace(
        task,
        status="queued",
        order_priority=task.priority,
        queued_at=c.now,
        not_before=None,
        progress=None,
        error=None,
    )
    c.put_task(queued)
