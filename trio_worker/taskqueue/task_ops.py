"""The task tools of the engine: submit, status, cancel, list, priority, result and retry."""

from __future__ import annotations

import functools
import uuid
from dataclasses import replace
from typing import Any

import trio

from . import queries
from . import transitions as tr
from .core import CANCEL_WAIT, EngineCore
from .db import DuplicateError, StoreError
from .errors import ConflictError, InvalidRequestError, QueueUnavailableError
from .models import (
    MAX_PRIORITY,
    TASK_LIST_MAX,
    TASK_STATUSES,
    TERMINAL_TASK_STATUSES,
    RetryConfig,
    RetryPolicy,
    check_id,
    check_object,
    check_range,
    check_reason,
    check_statuses,
    check_strings,
    check_tool_name,
    parse,
)
from .payload import check_arguments
from .protocol_transitions import ORIGIN
from .queries import TaskQuery
from .records import TaskRecord
from .runner import Run
from .scheduling import mean_durations
from .state import Changes
from .views import attempt_view, iso, page_view, rounded, seconds, task_detail
from .workflows import output_of

ID_ATTEMPTS = 5
"""How many generated task ids ``task_submit`` draws before giving up (one is taken with odds of 2^-64)."""


def new_task_id() -> str:
    return f"task-{uuid.uuid4().hex[:16]}"


class TaskOperations(EngineCore):
    """task_submit, task_status, task_cancel, task_list, task_priority, task_result, task_retry."""

    async def task_submit(
        self,
        task_type: str,
        payload: dict[str, Any] | None = None,
        *,
        task_id: str | None = None,
        priority: float = 1.0,
        tags: list[str] | None = None,
        timeout: float | None = None,
        retry_policy: RetryPolicy | dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a deferred call of tool ``task_type`` with ``payload`` as its arguments.

        The payload is checked against the tool's input schema now. Without ``retry_policy`` the tool's
        own ``retry_policy`` metadata decides (``none``: no retries). The task may start before this
        returns; the answer says where it is.

        Raises:
            InvalidRequestError: unknown task type, a payload the schema refuses, an invalid parameter.
            ConflictError: ``task_id`` is taken.
        """
        self._require_serving()
        payload = {} if payload is None else payload
        if task_id is not None:
            check_id(task_id, "task_id")
        check_tool_name(task_type)
        check_range(priority, "priority", -MAX_PRIORITY, MAX_PRIORITY)
        tags = check_strings(tags)
        if timeout is not None:
            check_range(timeout, "timeout", 1e-3, 7 * 24 * 3600.0)
        policy = None if retry_policy is None else parse(RetryPolicy, retry_policy, "retry_policy")
        metadata = check_object(metadata, "metadata")
        catalog = await self._router.catalog(need=task_type)
        entry = catalog.get(task_type)
        if entry is None:
            raise InvalidRequestError(f"task_type: unknown task type {task_type!r} (no tool of that name)")
        check_arguments(entry.get("inputSchema"), payload, "payload")
        retries, factor, backoff = tr.retry_settings(policy, entry)

        def record(c: Changes, task_id: str) -> None:
            if c.task(task_id) is not None:
                raise ConflictError(f"task_id: a task {task_id!r} already exists")
            tr.new_task(
                c,
                task_id=task_id,
                task_type=task_type,
                payload=payload,
                priority=float(priority),
                tags=tags,
                timeout=timeout,
                max_retries=retries,
                backoff_factor=factor,
                backoff=backoff,
                metadata=metadata,
            )
            c.created.add(task_id)  # a plain INSERT: an id taken by a finished task fails the write

        # The id is checked in memory (unfinished tasks) and by the INSERT's primary key (every task),
        # without a read of its own: a submission costs one share of one group commit.
        chosen = task_id
        for _ in range(ID_ATTEMPTS):
            candidate = chosen if chosen is not None else new_task_id()
            try:
                await self._committer.transact(functools.partial(record, task_id=candidate))
            except DuplicateError:
                if chosen is not None:
                    raise ConflictError(f"task_id: a task {chosen!r} already exists") from None
                continue  # a generated id that is taken (astronomically rare): draw another
            except StoreError as exc:
                raise QueueUnavailableError(f"database: cannot commit: {exc}") from None
            task_id = candidate
            break
        else:
            raise QueueUnavailableError("task_id: could not draw a free task id")
        await self._scheduler.dispatch()
        # as this engine just committed and dispatched it (on a shared database, the database would cost
        # a round trip for an answer one moment newer)
        task = self._state.tasks.get(task_id) or await self._find_task(task_id)
        positions, estimates = await self._place(task)
        summary = self._summary(task, positions, estimates)
        return {
            "success": True,
            "task_id": task_id,
            "status": task.status,
            "queue_position": summary["queue_position"],
            "estimated_start_time": (
                iso(task.started_at) if task.status != "queued" else summary["estimated_start_time"]
            ),
            "assigned_worker": task.worker_id,
            "waiting_reason": summary["waiting_reason"],
            "retry_policy": {"max_retries": retries, "backoff_factor": factor, "backoff": backoff},
        }

    async def task_status(
        self, task_id: str, include_logs: bool = False, include_metrics: bool = False
    ) -> dict[str, Any]:
        """A task's state: status, progress 0-100, executor, times, queue position and estimate.

        Raises:
            NotFoundError: no such task.
        """
        self._require_serving()
        task = await self._find_task(task_id)
        positions, estimates = await self._queue_info()
        result = task_detail(task, self._summary(task, positions, estimates))
        if include_logs:
            result["logs"] = (await self._logs([task.task_id]))[task.task_id]
        if include_metrics:
            attempts = await self._store.read(lambda conn: queries.task_attempts(conn, task.task_id))
            end = task.ended_at if task.ended_at is not None else self._clock()
            result["metrics"] = {
                "wait_time": seconds(task.submitted_at, task.first_started_at),
                "execution_time": seconds(task.started_at, end) if task.started_at is not None else None,
                "total_execution_time": rounded(
                    sum((a.ended_at or end) - a.started_at for a in attempts if a.outcome != "busy")
                )
                if attempts
                else None,
                "attempts": [attempt_view(a) for a in attempts],
                "average_execution_time_of_type": rounded(
                    mean_durations(self._scheduler.durations).get(task.task_type)
                ),
            }
        return result

    async def task_cancel(
        self, task_id: str, reason: str | None = None, force: bool = False
    ) -> dict[str, Any]:
        """Cancel a task. A queued task is cancelled at once. A running one is cancelled in its worker
        through the router; without ``force`` this waits (up to ``CANCEL_WAIT``) until the call stopped,
        with ``force`` the task is recorded cancelled at once and the call's cleanup is not awaited.

        A task that ended first is reported with ``success: false`` and its final status.

        Raises:
            NotFoundError: no such task.
        """
        self._require_serving()
        reason = check_reason(reason) or "cancelled by task_cancel"
        task = await self._find_task(task_id)
        catalog = await self._router.catalog_quietly() if task.workflow_id else None
        previous = task.status

        async def decide() -> dict[str, Any] | Run | None:
            nonlocal previous
            current = await self._find_task(task.task_id)
            previous = current.status
            if current.status in TERMINAL_TASK_STATUSES:
                return _not_cancelled(current, previous)
            run = self._runner.running.get(current.task_id)
            elsewhere = current.status == "running" and run is None and self.shared
            c = self._changes(catalog)
            if current.status != "running" or (run is None and (force or not elsewhere)):
                tr.cancel(c, current, reason)  # not running here: nothing to wait for
                await self._committer.commit(c)
                return _cancelled(current.task_id, previous, reason, forced=force and elsewhere)
            if run is None:  # running on another engine: it stops the call and records the end
                c.put_task(replace(current, cancel_requested=reason))
                c.log(current.task_id, f"cancel requested: {reason}", "warning")
                await self._committer.commit(c)
                return None
            run.cancel_reason = reason
            if force:
                tr.cancel(c, current, reason, attempt_open=True)
                await self._committer.commit(c)
                run.scope.cancel()
                return _cancelled(current.task_id, previous, reason, forced=True)
            run.scope.cancel()
            return run

        decided = await self._decide(decide)
        if isinstance(decided, dict):
            return decided
        with trio.move_on_after(CANCEL_WAIT):
            if decided is not None:
                await decided.done.wait()
            else:
                await self._stopped_elsewhere(task.task_id)
        if decided is None or not decided.done.is_set():

            async def give_up() -> None:
                current = await self._find_task(task.task_id)
                if current.status not in ("running", "queued"):
                    return
                c = self._changes(catalog)
                late = f"{reason} (the worker did not confirm within {CANCEL_WAIT:g} s)"
                local = self._runner.running.get(current.task_id) is not None
                tr.cancel(c, current, late if current.status == "running" else reason, attempt_open=local)
                await self._committer.commit(c)

            await self._decide(give_up)
        final = await self._find_task(task.task_id)
        if final.status != "cancelled":
            return _not_cancelled(final, previous)
        return _cancelled(task.task_id, previous, reason, forced=False)

    async def task_list(
        self,
        status_filter: Any = None,
        worker_filter: str | None = None,
        tag_filter: list[str] | None = None,
        priority_min: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Tasks matching every given filter (``tag_filter``: all its tags), newest first — or in dispatch
        order when the filter is only ``queued``.

        Raises:
            InvalidRequestError: an unknown status, or ``limit``/``offset`` out of range.
        """
        self._require_serving()
        statuses = check_statuses(status_filter, "status_filter", TASK_STATUSES)
        check_range(limit, "limit", 1, TASK_LIST_MAX, integer=True)
        check_range(offset, "offset", 0, 1e12, integer=True)
        if priority_min is not None:
            check_range(priority_min, "priority_min", -MAX_PRIORITY, MAX_PRIORITY)
        tags = check_strings(tag_filter, "tag_filter")
        if worker_filter is not None and not isinstance(worker_filter, str):
            raise InvalidRequestError("worker_filter: must be a worker id")
        positions, estimates = await self._queue_info()
        if statuses == ["queued"]:
            matching = [
                t
                for t in self._state.queued()
                if (worker_filter is None or t.worker_id == worker_filter)
                and (priority_min is None or t.priority >= priority_min)
                and all(tag in t.tags for tag in tags)
            ]
            total, page = len(matching), matching[offset : offset + limit]
        else:
            query = TaskQuery(statuses, worker_filter, tags or None, priority_min, limit, offset)
            page, total = await self._store.read(lambda conn: queries.list_tasks(conn, query))
            page = [self._state.tasks.get(t.task_id, t) for t in page]
        tasks = [self._summary(t, positions, estimates) for t in page]
        return page_view("tasks", tasks, total, offset)

    async def task_priority(self, task_id: str, new_priority: float, requeue: bool = True) -> dict[str, Any]:
        """Change a queued or running task's priority.

        ``requeue`` (default): a queued task is placed by the new priority, behind tasks of equal
        priority already queued. ``requeue=false``: it keeps its place now; the new priority applies at
        the next ``queue_resume(reorder_by_priority=true)`` or retry. For a running task the new priority
        applies to its retries.

        Raises:
            NotFoundError: no such task. ConflictError: the task has ended.
        """
        self._require_serving()
        check_range(new_priority, "new_priority", -MAX_PRIORITY, MAX_PRIORITY)
        found = await self._find_task(task_id)

        async def decide() -> tuple[TaskRecord, TaskRecord, int | None]:
            task = await self._find_task(found.task_id)
            if task.status in TERMINAL_TASK_STATUSES:
                raise ConflictError(
                    f"task_id: task {task.task_id!r} is {task.status}; only a queued or running task's "
                    "priority can change"
                )
            old_position = {t.task_id: i + 1 for i, t in enumerate(self._state.queued())}.get(task.task_id)
            changed = replace(task, priority=float(new_priority))
            if task.status == "queued" and requeue:
                changed = replace(
                    changed, order_priority=float(new_priority), order_seq=self._state.take_seq()
                )
            c = self._changes()
            c.put_task(changed)
            c.log(
                task.task_id,
                f"priority {task.priority:g} -> {new_priority:g}"
                + (" (requeued)" if requeue else " (kept its place)"),
            )
            await self._committer.commit(c)
            return task, changed, old_position

        task, changed, old_position = await self._decide(decide)
        new_position = {t.task_id: i + 1 for i, t in enumerate(self._state.queued())}.get(task.task_id)
        return {
            "success": True,
            "task_id": task.task_id,
            "status": changed.status,
            "old_priority": task.priority,
            "new_priority": float(new_priority),
            "requeued": bool(requeue and task.status == "queued"),
            "old_queue_position": old_position,
            "new_queue_position": new_position,
        }

    async def task_result(
        self,
        task_id: str,
        include_output: bool = True,
        include_logs: bool = False,
        include_payload: bool = False,
    ) -> dict[str, Any]:
        """The outcome of a task: ``result`` (the tool's CallToolResult of the last attempt), ``output``
        (its structured content or text) and ``execution_time`` (of the last attempt). Both are ``null``
        while the task has not ended, and left out (``null``) with ``include_output=false``; with
        ``include_payload``, ``payload`` too. All whole (``task_status`` clips a large payload).

        Raises:
            NotFoundError: no such task.
        """
        self._require_serving()
        task = await self._find_task(task_id)
        finished = task.status in TERMINAL_TASK_STATUSES
        answer: dict[str, Any] = {
            "task_id": task.task_id,
            "status": task.status,
            "finished": finished,
            "success": task.status == "completed",
            "result": task.result if include_output and finished else None,
            "output": output_of(task.result) if include_output and finished and task.result else None,
            "error": task.error if task.status != "completed" else None,
            "cancel_reason": task.cancel_reason,
            "attempts": task.attempts,
            "execution_time": seconds(task.started_at, task.ended_at) if finished else None,
            "wait_time": seconds(task.submitted_at, task.first_started_at),
            "start_time": iso(task.started_at),
            "end_time": iso(task.ended_at),
            "logs": None,
        }
        if include_logs:
            answer["logs"] = (await self._logs([task.task_id]))[task.task_id]
        if include_payload:
            answer["payload"] = task.payload
        return answer

    async def task_retry(
        self, task_id: str, retry_config: RetryConfig | dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Queue a new task that repeats a failed or cancelled one, linked to it (``retry_of``).

        ``retry_config`` may change max_retries, backoff_factor, priority, timeout and add a start
        ``delay``; the rest is copied. The payload is checked again against the tool's current schema. A
        workflow step's task is retried as a standalone task: its workflow is not changed.

        Raises:
            NotFoundError: no such task. ConflictError: it is queued, running, input_required or
                completed, or it is an MCP task.
            InvalidRequestError: its tool no longer exists or no longer accepts the payload.
        """
        self._require_serving()
        config = parse(RetryConfig, retry_config or {}, "retry_config")
        original = await self._find_task(task_id)
        if original.origin == ORIGIN:
            raise ConflictError(
                f"task_id: task {original.task_id!r} is an MCP task (tasks/create); task_retry cannot run it "
                "again"
            )
        if original.status not in ("failed", "cancelled"):
            raise ConflictError(
                f"task_id: task {original.task_id!r} is {original.status}; only failed or cancelled tasks "
                "can be retried"
            )
        catalog = await self._router.catalog(need=original.task_type)
        entry = catalog.get(original.task_type)
        if entry is None:
            raise InvalidRequestError(f"task_id: its task type {original.task_type!r} is no longer a tool")
        check_arguments(entry.get("inputSchema"), original.payload, "payload")

        async def decide() -> TaskRecord:
            new_id = await self._new_id("task", queries.task_exists)
            c = self._changes()
            retry = tr.new_task(
                c,
                task_id=new_id,
                task_type=original.task_type,
                payload=original.payload,
                priority=original.priority if config.priority is None else config.priority,
                tags=list(original.tags),
                timeout=original.timeout if config.timeout is None else config.timeout,
                max_retries=original.max_retries if config.max_retries is None else config.max_retries,
                backoff_factor=(
                    original.backoff_factor if config.backoff_factor is None else config.backoff_factor
                ),
                backoff=original.backoff,
                metadata=dict(original.metadata),
                delay=config.delay,
                retry_of=original.task_id,
                retry_count=original.retry_count + 1,
            )
            c.log(original.task_id, f"retried as {new_id}")
            await self._committer.commit(c)
            return retry

        retry = await self._decide(decide)
        await self._scheduler.dispatch()
        current = await self._find_task(retry.task_id)
        positions, estimates = await self._queue_info()
        return {
            "success": True,
            "task_id": original.task_id,
            "retry_task_id": retry.task_id,
            "retry_count": retry.retry_count,
            "status": current.status,
            "queue_position": positions.get(retry.task_id),
            "estimated_start_time": iso(estimates.get(retry.task_id)),
        }


def _cancelled(task_id: str, previous: str, reason: str, *, forced: bool) -> dict[str, Any]:
    return {
        "success": True,
        "task_id": task_id,
        "status": "cancelled",
        "previous_status": previous,
        "reason": reason,
        "forced": forced,
        "message": (
            "cancelled; the call is being stopped in its worker without waiting for its cleanup"
            if forced
            else (
                "cancelled before it started"
                if previous == "queued"
                else "cancelled; the call stopped in its worker"
            )
        ),
    }


def _not_cancelled(task: TaskRecord, previous: str) -> dict[str, Any]:
    return {
        "success": False,
        "task_id": task.task_id,
        "status": task.status,
        "previous_status": previous,
        "message": f"the task {'already ' if previous == task.status else ''}ended first: {task.status}",
    }
