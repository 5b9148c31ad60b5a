"""What a configuration asks the arbiter to run: a fresh ``WorkerProcess`` for each slot and spare, with
its core and its interpreter's command line (``shared.launch`` is the contract with the worker)."""

from __future__ import annotations

import os
from typing import Any, cast

from shared.launch import WorkerOptions
from shared.metadata import Runtime

from .config import Settings
from .containment import database_argument, database_environment
from .process import WorkerProcess
from .slots import QUEUE_POOL, plan_cpus, spare_ids, worker_slots
from .worker_user import WorkerUser


def plan_workers(settings: Settings, router_endpoint: str) -> dict[str, WorkerProcess]:
    """Fresh (not started) workers for every slot ``settings`` asks for, by worker id."""
    slots = worker_slots(settings.worker_counts(), settings.task_queue)
    cpus = plan_cpus([worker_id for worker_id, _, _ in slots], settings.pin_cpus)
    return {
        worker_id: WorkerProcess(
            worker_id,
            runtime,
            cpus[worker_id],
            worker_argv(settings, router_endpoint, worker_id, runtime, pool, cpus[worker_id]),
            json_logs=settings.log_format == "json",
            pool=pool,
            **_environment(settings, pool),
        )
        for worker_id, runtime, pool in slots
    }


def plan_spares(settings: Settings, router_endpoint: str) -> dict[str, WorkerProcess]:
    """Fresh spares for ``settings``: ``spare_workers`` per pool, on the core of its first slot."""
    counts = settings.worker_counts()
    slots = worker_slots(counts, settings.task_queue)
    cpus = plan_cpus([worker_id for worker_id, _, _ in slots], settings.pin_cpus)
    spares = {}
    for spare_id, pool in spare_ids(counts, settings.spare_workers):
        cpu = cpus.get(f"{pool}-0")
        spares[spare_id] = WorkerProcess(
            spare_id,
            pool,
            cpu,
            worker_argv(settings, router_endpoint, spare_id, pool, pool, cpu),
            json_logs=settings.log_format == "json",
            pool=pool,
            **_environment(settings, pool),  # a spare becomes a worker: the same environment, no wider
            spare=True,
        )
    return spares


def worker_argv(
    s: Settings, router_endpoint: str, worker_id: str, runtime: str, pool: str, cpu: int | None
) -> list[str]:
    """The interpreter's arguments for one worker."""
    queue = pool == QUEUE_POOL
    user = WorkerUser.of(s.worker_user, s.worker_group)  # checked at start: never None by surprise
    options = WorkerOptions(
        worker_id=worker_id,
        runtime=cast(Runtime, runtime),  # worker_slots yields the configured runtimes only
        router=router_endpoint,
        parent_pid=os.getpid(),
        pool=pool,
        modules=("trio_worker.taskqueue.tools",) if queue else s.tools,
        cpu=cpu,
        service="taskqueue" if queue else None,
        task_db=database_argument(s.task_db) if queue and s.task_db is not None else None,
        task_ttl=s.task_ttl if queue else None,
        task_retention=s.task_retention if queue else None,
        task_lease_seconds=s.task_lease_seconds if queue else None,
        step_max_bytes=s.workflow_step_max_bytes if queue else None,
        threads=s.worker_threads,
        heartbeat_interval=s.heartbeat_interval,
        max_message_size=s.max_message_size,
        log_level=s.log_level,
        log_format=s.log_format,
        rlimit_nofile=s.worker_rlimit_nofile,
        rlimit_as=s.worker_rlimit_as,
        user=user.uid if user else None,
        group=user.gid if user else None,
    )
    return options.command()


def _environment(settings: Settings, pool: str) -> dict[str, Any]:
    """A worker's ``env`` allow-list and ``extra_env`` (``containment.database_environment``: the task
    queue's database password goes in its environment, not on its command line)."""
    allow, extra = database_environment(settings.task_db if pool == QUEUE_POOL else None, settings.worker_env)
    return {"env": allow, "extra_env": extra}
