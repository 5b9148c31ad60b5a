"""The mirror: what an engine on a shared (PostgreSQL) database keeps in memory, and how it stays fresh.

On a shared database the engine's ``State`` is a mirror of the database, never an authority (see
docs/architecture.md): it answers positions, estimates and counts, and the transitions read it, but every
write they make is checked against the row's revision, so a decision taken on a stale mirror fails
(``StaleError``) instead of being committed. The mirror is refreshed:

- by the engine's own commits (``Changes.apply``), as on SQLite;
- by the other engines' commits: each announces the ids it changed (``PgStore.announce``); the listener
  hands them to ``deliver``, and ``serve`` re-reads those rows under the commit lock;
- after a refused transaction, for the rows it touched (``refresh_changes``, called by the committer);
- with rows locked by a claim (``absorb``: they are the truth of that transaction);
- whole, after the listener reconnected (a notification may have been lost) and every ``RESYNC``
  seconds as a safety net (``reload``).

A refresh that changes something calls ``on_refreshed(changed, settings_changed)`` (``changed``: task id
-> (the mirror's record before or ``None``, the row now or ``None`` when it is gone), for the tasks whose
revision or presence changed): the engine stops the runs another engine cancelled or took over, sends
protocol task changes and wakes its scheduler.

Concurrency: everything runs on the engine's Trio thread; the database reads run on the store's threads.
The refreshes run under the commit lock, so that a read never lands between a commit and its apply: the
rows read are at least as new as everything this engine committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from .db import Db, Store
from .models import TERMINAL_TASK_STATUSES
from .queries import in_list, load_snapshot
from .records import Registration, StepRecord, TaskRecord, WorkflowRecord
from .rows import from_row
from .state import ACTIVE_WORKFLOW_STATUSES, Changes, SharedState, State

logger = logging.getLogger("mcp_supervisor.taskqueue")

Changed = dict[str, tuple[TaskRecord | None, TaskRecord | None]]
"""Task id -> (the mirror's record before, the row now); ``None``: not in the mirror / gone."""

RESYNC = 30.0
"""Seconds between two full reloads of the mirror when no notification said anything was missed."""


@dataclass(slots=True)
class Fetched:
    """Rows read for the mirror: tasks by id (``None``: gone), workflows by id with their steps, and the
    shared settings when asked for."""

    tasks: dict[str, TaskRecord | None] = field(default_factory=dict)
    workflows: dict[str, tuple[WorkflowRecord, list[StepRecord]] | None] = field(default_factory=dict)
    settings: dict[str, Any] | None = None
    registrations: list[Registration] | None = None


def fetch(
    db: Db, task_ids: Iterable[str], workflow_ids: Iterable[str], settings: bool, known: set[str]
) -> Fetched:
    """Read these tasks and workflows (and the workflows of step tasks the mirror does not know, so that
    a step's end can advance its workflow), and the settings and registrations if ``settings``.
    ``known``: the workflows the mirror has (on the database thread: a plain set, not the live dict)."""
    found = Fetched()
    tasks = list(dict.fromkeys(task_ids))
    if tasks:
        clause, params = in_list(db, "task_id", tasks)
        rows = {
            row["task_id"]: from_row(TaskRecord, row)
            for row in db.execute(f"SELECT * FROM tasks WHERE {clause}", params)
        }
        found.tasks = {task_id: rows.get(task_id) for task_id in tasks}
    wanted = dict.fromkeys(workflow_ids)
    for task in found.tasks.values():
        if task is not None and task.workflow_id and task.workflow_id not in known:
            wanted[task.workflow_id] = None
    if wanted:
        found.workflows = fetch_workflows(db, list(wanted))
    if settings:
        found.settings = {
            row["key"]: json.loads(row["value"]) for row in db.execute("SELECT * FROM settings")
        }
        found.registrations = [from_row(Registration, row) for row in db.execute("SELECT * FROM executors")]
    return found


def fetch_workflows(
    db: Db, workflow_ids: list[str]
) -> dict[str, tuple[WorkflowRecord, list[StepRecord]] | None]:
    """These workflows with their steps (in position order); ``None`` for one that is gone."""
    clause, params = in_list(db, "workflow_id", workflow_ids)
    workflows = {
        row["workflow_id"]: from_row(WorkflowRecord, row)
        for row in db.execute(f"SELECT * FROM workflows WHERE {clause}", params)
    }
    steps: dict[str, list[StepRecord]] = {}
    for row in db.execute(f"SELECT * FROM steps WHERE {clause} ORDER BY workflow_id, position", params):
        steps.setdefault(row["workflow_id"], []).append(from_row(StepRecord, row))
    return {
        workflow_id: None
        if workflow_id not in workflows
        else (workflows[workflow_id], steps.get(workflow_id, []))
        for workflow_id in workflow_ids
    }


class Mirror:
    """Keeps an engine's ``State`` in step with a shared database (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        state: State,
        lock: trio.Lock,
        on_refreshed: Callable[[Changed, bool], None],
    ) -> None:
        self._store = store
        self._state = state
        self._lock = lock
        self._on_refreshed = on_refreshed
        self._tasks: set[str] = set()
        self._workflows: set[str] = set()
        self._settings = False
        self._reload = False
        self._pending = trio.Event()
        self.refreshes = 0
        """How many refreshes (and reloads) have been applied (for tests and diagnostics)."""

    # -- what the other engines changed --

    def deliver(self, payload: dict[str, Any] | None) -> None:
        """The listener's callback (on the Trio thread): note what changed; ``None``: maybe everything."""
        if payload is None:
            self._reload = True
        else:
            self._tasks.update(str(item) for item in payload.get("t") or ())
            self._workflows.update(str(item) for item in payload.get("w") or ())
            self._settings = self._settings or bool(payload.get("s"))
        self._pending.set()

    async def serve(self) -> None:
        """Apply what ``deliver`` noted, under the commit lock; reload everything every ``RESYNC``.

        Returns: never returns unless cancelled. A failed read is logged and the rows stay noted.
        """
        while True:
            with trio.move_on_after(RESYNC) as timer:
                await self._pending.wait()
            self._pending = trio.Event()
            reload = self._reload or timer.cancelled_caught
            tasks, workflows, settings = self._tasks, self._workflows, self._settings
            self._tasks, self._workflows, self._settings, self._reload = set(), set(), False, False
            try:
                async with self._lock:
                    if reload:
                        await self.reload()
                    else:
                        await self.refresh(tasks, workflows, settings)
            except Exception as exc:  # the database is away: keep what is noted and try again
                logger.warning("task queue: cannot refresh from the database: %s", exc)
                self._tasks |= tasks
                self._workflows |= workflows
                self._settings = self._settings or settings
                self._reload = self._reload or reload
                self._pending.set()
                await trio.sleep(1.0)

    # -- refreshing (the caller holds the commit lock) --

    async def refresh(self, tasks: Iterable[str], workflows: Iterable[str], settings: bool = False) -> None:
        """Read these rows again and make them the mirror's.

        Raises:
            StoreError: the database could not be read (the mirror is unchanged).
        """
        task_ids, workflow_ids = list(tasks), list(workflows)
        if not task_ids and not workflow_ids and not settings:
            return
        known = set(self._state.workflows)
        found = await self._store.read(lambda db: fetch(db, task_ids, workflow_ids, settings, known))
        self.absorb(found)

    async def refresh_changes(self, c: Changes) -> None:
        """Read again every row ``c`` touched (the committer calls this when ``c`` was refused as stale)."""
        tasks, workflows, settings = c.changed_ids()
        for task in c.tasks.values():
            if task.workflow_id:
                workflows.append(task.workflow_id)
        await self.refresh(tasks, workflows, settings)

    def absorb(self, found: Fetched) -> None:
        """Make rows read from the database the mirror's, and tell ``on_refreshed`` what changed."""
        state = self._state
        changed: Changed = {}
        for task_id, task in found.tasks.items():
            old = state.tasks.get(task_id)
            if task is None or task.status in TERMINAL_TASK_STATUSES:
                state.drop(task_id)
            else:
                state.put(task)
            if old is not task and (old is None or task is None or old.rev != task.rev):
                changed[task_id] = (old, task)
        for workflow_id, entry in found.workflows.items():
            if entry is not None and entry[0].status in ACTIVE_WORKFLOW_STATUSES:
                state.workflows[workflow_id] = entry[0]
                state.steps[workflow_id] = {step.step_id: step for step in entry[1]}
            else:
                state.workflows.pop(workflow_id, None)
                state.steps.pop(workflow_id, None)
        settings_changed = False
        if found.settings is not None:
            settings_changed = state.paused != found.settings.get("paused")
            state.paused = found.settings.get("paused")
        if found.registrations is not None:
            registrations = {r.worker_id: r for r in found.registrations}
            settings_changed = settings_changed or registrations != state.registrations
            state.registrations = registrations
        self.refreshes += 1
        if changed or settings_changed:
            self._on_refreshed(changed, settings_changed)

    async def reload(self) -> None:
        """Read every unfinished task and workflow, the settings and the registrations again.

        Raises:
            StoreError: the database could not be read (the mirror is unchanged).
        """
        snapshot = await self._store.read(lambda db: load_snapshot(db, history=False))
        fresh = loaded_state(snapshot)
        state = self._state
        fresh.finished = state.finished
        fresh.next_seq = max(state.next_seq, fresh.next_seq)
        before = dict(state.tasks)
        paused, registrations = state.paused, state.registrations
        state.restore(fresh)
        changed: Changed = {}
        for task_id in before.keys() | state.tasks.keys():
            old, new = before.get(task_id), state.tasks.get(task_id)
            if old is None or new is None or old.rev != new.rev:
                changed[task_id] = (old, new)
        self.refreshes += 1
        settings_changed = paused != state.paused or registrations != state.registrations
        if changed or settings_changed:
            self._on_refreshed(changed, settings_changed)


def loaded_state(snapshot: Any) -> SharedState:
    """The mirror of a database snapshot (``queries.load_snapshot``)."""
    return SharedState.from_snapshot(snapshot)
