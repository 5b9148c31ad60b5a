"""The executor tools of the engine: register, unregister and status."""

from __future__ import annotations

from typing import Any

from .core import EngineCore
from .errors import NotFoundError
from .models import check_id, check_object, check_range, check_strings
from .records import Registration
from .scheduling import unplaceable_reason
from .views import iso


class ExecutorOperations(EngineCore):
    """worker_register, worker_unregister, worker_status."""

    async def worker_register(
        self,
        worker_id: str,
        capabilities: list[str] | None = None,
        max_concurrent_tasks: int = 5,
        resource_limits: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Declare an executor, or replace its declaration.

        With the id of a live worker process it sets that process's limit and, when ``capabilities`` is
        not empty, narrows the task types it is given to those. With any other id it is an executor
        without a live process: it is listed as such, and tasks only it could run stay queued with that
        reason until a worker process of that id appears.

        Raises:
            InvalidRequestError: a malformed id, capability, limit or object.
        """
        self._require_serving()
        check_id(worker_id, "worker_id")
        caps = check_strings(capabilities, "capabilities")
        check_range(max_concurrent_tasks, "max_concurrent_tasks", 1, 1000, integer=True)
        limits = check_object(resource_limits, "resource_limits")
        meta = check_object(metadata, "metadata")
        catalog = await self._router.catalog_quietly() or {}
        await self._router.refresh_workers(0.0)

        async def decide() -> tuple[Registration | None, Registration]:
            existing = self._state.registrations.get(worker_id)
            registration = Registration(
                worker_id, caps, int(max_concurrent_tasks), limits, meta, self._clock()
            )
            c = self._changes()
            c.put_registration(worker_id, registration)
            await self._committer.commit(c)
            return existing, registration

        existing, registration = await self._decide(decide)
        view = next(e for e in self._scheduler.executors() if e.worker_id == worker_id)
        return {
            "success": True,
            "worker_id": worker_id,
            "updated": existing is not None,
            "live": view.live,
            "kind": view.kind,
            "capabilities": sorted(view.capabilities),
            "max_concurrent_tasks": view.max_concurrent,
            "unknown_capabilities": sorted(set(caps) - set(catalog)) if catalog else [],
            "registered_at": iso(registration.registered_at),
            "message": (
                f"worker process {worker_id} now takes at most {view.max_concurrent} task(s)"
                + (f" of {len(view.capabilities)} type(s)" if caps else "")
                if view.live
                else f"no live worker process has id {worker_id}: tasks only it can run stay queued"
            ),
        }

    async def worker_unregister(self, worker_id: str) -> dict[str, Any]:
        """Remove a registration. Its running tasks finish; a live worker process stays an executor with
        its own tools and the default limit.

        Raises:
            NotFoundError: no registration of that id (worker processes themselves cannot be removed).
        """
        self._require_serving()
        check_id(worker_id, "worker_id")
        await self._router.refresh_workers(0.0)

        async def decide() -> None:
            if worker_id not in self._state.registrations:
                live = any(str(w.get("id")) == worker_id for w in self._router.workers)
                raise NotFoundError(
                    f"worker_id: no registered executor {worker_id!r}"
                    + (
                        " (it is a worker process of the supervisor; those cannot be unregistered)"
                        if live
                        else ""
                    )
                )
            c = self._changes()
            c.put_registration(worker_id, None)
            await self._committer.commit(c)

        await self._decide(decide)
        executors = self._scheduler.executors()
        stranded = sum(
            1
            for t in self._state.tasks.values()
            if t.status == "queued" and unplaceable_reason(t.task_type, executors) is not None
        )
        return {
            "success": True,
            "worker_id": worker_id,
            "still_live": any(e.worker_id == worker_id and e.live for e in executors),
            "running_tasks": sum(1 for r in self._runner.running.values() if r.executor_id == worker_id),
            "queued_tasks_without_executor": stranded,
        }

    async def worker_status(self, worker_id: str | None = None) -> dict[str, Any]:
        """The executors (worker processes and registrations) with capabilities, limits, the queue's
        tasks on each, the router's in-flight count and totals from the task history.

        Raises:
            NotFoundError: ``worker_id`` is neither a live worker process nor registered.
        """
        self._require_serving()
        return await self._worker_report(worker_id)
