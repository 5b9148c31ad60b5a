"""The queue tools of the engine: statistics, pause, resume and clear; and ``live_stats``, the counts
the supervisor polls for /status, /metrics and ``top`` (the ``tasks:stats`` entry)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import queries
from . import transitions as tr
from .core import EngineCore
from .db import Db
from .errors import InvalidRequestError
from .models import TASK_STATUSES, TERMINAL_TASK_STATUSES, check_reason, check_statuses
from .views import iso, rounded, seconds

ORIGINS = ("mcp", "queue")
"""``TaskRecord.origin``: a protocol task's or one of the 20 tools' (``live_stats`` counts by it)."""
UNFINISHED_STATUSES = tuple(s for s in TASK_STATUSES if s not in TERMINAL_TASK_STATUSES)
FINISHED_STATUSES = tuple(s for s in TASK_STATUSES if s in TERMINAL_TASK_STATUSES)


class QueueOperations(EngineCore):
    """queue_stats, queue_pause, queue_resume, queue_clear; live_stats."""

    def live_stats(self) -> dict[str, Any]:
        """The queue's figures from memory alone (no database read: it is polled)::

            {"paused": bool, "pause_reason": str | None,
             "tasks": {status: {"mcp": n, "queue": n}},     # queued, running, input_required: now
             "finished": {status: {"mcp": n, "queue": n}},  # completed, failed, cancelled: since start
             "workflows": {"pending": n, "running": n},
             "expired": n}                                  # deleted by the retention sweep since start

        Every status and origin is present (0 when none). ``finished`` and ``expired`` only grow while
        this engine serves (Prometheus counters); they restart from 0 with the process.

        Raises:
            QueueUnavailableError: the engine is not serving.
        """
        self._require_serving()
        state = self._state
        paused = state.paused
        workflows = {"pending": 0, "running": 0}
        for workflow in state.workflows.values():
            if workflow.status in workflows:
                workflows[workflow.status] += 1
        return {
            "paused": paused is not None,
            "pause_reason": None if paused is None else paused.get("reason"),
            "tasks": {
                status: {origin: state.unfinished.get((status, origin), 0) for origin in ORIGINS}
                for status in UNFINISHED_STATUSES
            },
            "finished": {
                status: {origin: state.finished.get((status, origin), 0) for origin in ORIGINS}
                for status in FINISHED_STATUSES
            },
            "workflows": workflows,
            "expired": self.expired,
        }

    async def queue_stats(
        self, include_worker_stats: bool = False, include_historical: bool = False
    ) -> dict[str, Any]:
        """Counts per status, average wait and execution time, and throughput, from recorded timestamps.

        Throughput is finished tasks per minute over the last 1, 5 and 60 minutes — over less when the
        database holds less history than that (``window_seconds`` says over how much).
        """
        self._require_serving()
        now = self._clock()

        def gather(conn: Db) -> dict[str, Any]:
            first = queries.first_activity(conn)
            windows = {}
            for name, span in (("last_minute", 60.0), ("last_5_minutes", 300.0), ("last_hour", 3600.0)):
                finished = queries.finished_since(conn, now - span)
                actual = max(0.0, min(span, now - first)) if first is not None else 0.0
                done = sum(finished.values())
                windows[name] = {
                    "window_seconds": round(actual, 3),
                    "completed": finished.get("completed", 0),
                    "failed": finished.get("failed", 0),
                    "cancelled": finished.get("cancelled", 0),
                    "tasks_per_minute": round(done / actual * 60.0, 4) if actual > 0 else None,
                    "completed_per_minute": (
                        round(finished.get("completed", 0) / actual * 60.0, 4) if actual > 0 else None
                    ),
                }
            gathered: dict[str, Any] = {
                "counts": queries.status_counts(conn),
                "averages": queries.averages(conn),
                "throughput": windows,
            }
            if include_historical:
                gathered["hourly"] = queries.hourly(conn, now - 24 * 3600.0)
                gathered["by_task_type"] = queries.by_task_type(conn)
            return gathered

        data = await self._store.read(gather)
        counts = {status: int(data["counts"].get(status, 0)) for status in TASK_STATUSES}
        averages = data["averages"]
        paused = self._state.paused
        answer: dict[str, Any] = {
            "counts": counts,
            "total_tasks": sum(counts.values()),
            "queue_length": counts["queued"],
            "paused": paused is not None,
            "pause_reason": None if paused is None else paused.get("reason"),
            "paused_since": None if paused is None else iso(paused.get("since")),
            "average_wait_time": rounded(averages["average_wait_time"]),
            "average_execution_time": rounded(averages["average_execution_time"]),
            "samples": {"wait": averages["wait_samples"], "execution": averages["execution_samples"]},
            "throughput": data["throughput"],
            "workflows": {
                "pending": sum(1 for w in self._state.workflows.values() if w.status == "pending"),
                "running": sum(1 for w in self._state.workflows.values() if w.status == "running"),
            },
        }
        if include_worker_stats:
            answer["workers"] = (await self._worker_report(None))["workers"]
        if include_historical:
            answer["historical"] = {
                "hourly": [
                    {
                        "hour": iso(row["hour"] * 3600.0),
                        "completed": row["completed"],
                        "failed": row["failed"],
                        "cancelled": row["cancelled"],
                        "average_wait_time": rounded(row["wait"]),
                        "average_execution_time": rounded(row["execution"]),
                    }
                    for row in data["hourly"]
                ],
                "by_task_type": [
                    {
                        "task_type": row["task_type"],
                        "total": row["total"],
                        "completed": row["completed"],
                        "failed": row["failed"],
                        "cancelled": row["cancelled"],
                        "average_execution_time": rounded(row["execution"]),
                    }
                    for row in data["by_task_type"]
                ],
            }
        return answer

    async def queue_pause(self, reason: str | None = None) -> dict[str, Any]:
        """Stop starting tasks (running ones go on); submissions are still accepted. Survives restarts."""
        self._require_serving()
        reason = check_reason(reason)

        async def decide() -> tuple[bool, dict[str, Any]]:
            already = self._state.paused is not None
            if not already:
                c = self._changes()
                c.set_paused({"reason": reason, "since": c.now})
                await self._committer.commit(c)
            return already, self._state.paused or {}

        already, paused = await self._decide(decide)
        return {
            "success": True,
            "paused": True,
            "already_paused": already,
            "reason": paused.get("reason"),
            "paused_since": iso(paused.get("since")),
            "running_tasks": sum(1 for t in self._state.tasks.values() if t.status == "running"),
            "queued_tasks": sum(1 for t in self._state.tasks.values() if t.status == "queued"),
        }

    async def queue_resume(self, reorder_by_priority: bool = True) -> dict[str, Any]:
        """Start tasks again. ``reorder_by_priority``: queued tasks whose priority was changed with
        ``requeue=false`` take the place of their current priority; otherwise the order stays as it was."""
        self._require_serving()

        async def decide() -> tuple[dict[str, Any] | None, int]:
            paused = self._state.paused
            c = self._changes()
            reordered = 0
            if reorder_by_priority:
                for task in self._state.tasks.values():
                    if task.status == "queued" and task.order_priority != task.priority:
                        c.put_task(replace(task, order_priority=task.priority))
                        c.log(task.task_id, f"reordered by its priority {task.priority:g} on resume")
                        reordered += 1
            if paused is not None or self.shared:  # (another engine's pause may not have reached memory)
                c.set_paused(None)
            await self._committer.commit(c)
            return paused, reordered

        paused, reordered = await self._decide(decide)
        await self._scheduler.dispatch()
        return {
            "success": True,
            "paused": False,
            "was_paused": paused is not None,
            "paused_for": seconds(paused.get("since"), self._clock()) if paused else None,
            "reordered_tasks": reordered,
            "queued_tasks": sum(1 for t in self._state.tasks.values() if t.status == "queued"),
        }

    async def queue_clear(self, status_filter: Any = None, confirm: bool = False) -> dict[str, Any]:
        """Clear tasks by status (default: ``queued``): queued tasks are cancelled (they stay visible as
        cancelled), finished tasks are deleted with their logs. Running and input_required tasks are
        never cleared. Nothing happens without ``confirm=true``.

        Raises:
            InvalidRequestError: ``confirm`` is not true (the message says what would be cleared), an
                unknown status, or ``running`` or ``input_required`` in the filter.
        """
        self._require_serving()
        statuses = check_statuses(status_filter, "status_filter", TASK_STATUSES) or ["queued"]
        for unclearable in ("running", "input_required"):
            if unclearable in statuses:
                raise InvalidRequestError(
                    f"status_filter: {unclearable} tasks cannot be cleared; cancel them with task_cancel"
                )
        finished = [s for s in statuses if s != "queued"]

        async def decide() -> tuple[int, int]:
            queued = [t for t in self._state.queued()] if "queued" in statuses else []
            doomed = (
                await self._store.read(lambda conn: queries.matching_task_ids(conn, finished))
                if finished
                else []
            )
            if confirm is not True:
                raise InvalidRequestError(
                    f"confirm: queue_clear would cancel {len(queued)} queued and delete {len(doomed)} finished "
                    "task(s); nothing was changed — call it again with confirm=true"
                )
            catalog = await self._router.catalog_quietly() if any(t.workflow_id for t in queued) else None
            c = self._changes(catalog)
            for task in queued:
                current = c.task(task.task_id)
                if current is not None and current.status == "queued":
                    tr.cancel(c, current, "cleared from the queue (queue_clear)")
            for task_id in doomed:
                c.delete_task(task_id)
            await self._committer.commit(c)
            return len(queued), len(doomed)

        cancelled, deleted = await self._decide(decide)
        return {
            "success": True,
            "status_filter": statuses,
            "cancelled": cancelled,
            "deleted": deleted,
            "cleared": cancelled + deleted,
        }
