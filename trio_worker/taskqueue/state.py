"""The engine's in-memory state and the unit of work that changes it.

``State`` holds what the scheduler needs without asking the database: the unfinished tasks and
workflows, the registrations and whether the queue is paused. Finished tasks and workflows live only in
the database; memory keeps only how many tasks finished since the engine started (``State.finished``,
counted by ``Changes.apply``), so ``tasks:stats`` can answer without reading the database.

A ``Changes`` is one atomic step of the state machine: transitions read the state through it (seeing their
own earlier changes), record new versions of records in it, and the engine then commits
``changes.writes()`` in one transaction and, only after that succeeded, calls ``changes.apply()``. So the
memory is never ahead of the disk, and a failed commit leaves both as they were.
"""

from __future__ import annotations

import bisect
import random
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any, Self

from . import rows
from .models import TERMINAL_TASK_STATUSES
from .records import LogLine, Registration, StepRecord, TaskRecord, WorkflowRecord

ACTIVE_WORKFLOW_STATUSES = frozenset({"pending", "running"})
_UNCHANGED = object()


@dataclass(slots=True)
class State:
    """Unfinished tasks (queued, running, input_required) and workflows (pending, running) with their
    steps."""

    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    workflows: dict[str, WorkflowRecord] = field(default_factory=dict)
    steps: dict[str, dict[str, StepRecord]] = field(default_factory=dict)
    registrations: dict[str, Registration] = field(default_factory=dict)
    paused: dict[str, Any] | None = None
    next_seq: int = 1
    order: list[tuple[float, int, str]] = field(default_factory=list)
    """The queued tasks in dispatch order, as ``(-order_priority, order_seq, task_id)``, kept sorted by
    ``put`` and ``drop`` so that neither the scheduler nor a queue position has to sort the queue."""

    queued_types: dict[str, int] = field(default_factory=dict)
    """How many queued tasks each task type has."""

    unfinished: dict[tuple[str, str], int] = field(default_factory=dict)
    """How many unfinished tasks there are by ``(status, origin)``, kept by ``put`` and ``drop``."""

    finished: dict[tuple[str, str], int] = field(default_factory=dict)
    """How many tasks ended by ``(status, origin)`` since this state was loaded (``Changes.apply``)."""

    @classmethod
    def from_snapshot(cls, snapshot: Any) -> Self:
        """The state of a database snapshot (``queries.load_snapshot``): its unfinished work, the
        registrations, the pause, the next submission number."""
        state = cls(
            tasks={task.task_id: task for task in snapshot.tasks},
            workflows={workflow.workflow_id: workflow for workflow in snapshot.workflows},
            registrations={r.worker_id: r for r in snapshot.registrations},
            paused=snapshot.settings.get("paused"),
            next_seq=snapshot.next_seq,
        )
        for step in snapshot.steps:
            state.steps.setdefault(step.workflow_id, {})[step.step_id] = step
        return state

    def __post_init__(self) -> None:
        self.order = sorted(_order_key(t) for t in self.tasks.values() if t.status == "queued")
        for task in self.tasks.values():
            if task.status == "queued":
                self.queued_types[task.task_type] = self.queued_types.get(task.task_type, 0) + 1
            _add(self.unfinished, (task.status, task.origin), 1)

    def restore(self, loaded: State) -> None:
        """Become ``loaded`` (what recovery read from the database), keeping this object: the engine's
        parts hold it from their construction on."""
        for f in fields(self):
            setattr(self, f.name, getattr(loaded, f.name))

    def put(self, task: TaskRecord) -> None:
        """Make ``task`` the current version of an unfinished task (keeping ``order`` in step)."""
        old = self.tasks.get(task.task_id)
        if old is not None:
            _add(self.unfinished, (old.status, old.origin), -1)
            if old.status == "queued":
                self._unorder(old)
        self.tasks[task.task_id] = task
        _add(self.unfinished, (task.status, task.origin), 1)
        if task.status == "queued":
            bisect.insort(self.order, _order_key(task))
            self.queued_types[task.task_type] = self.queued_types.get(task.task_type, 0) + 1

    def drop(self, task_id: str) -> None:
        """Forget a task that finished or was deleted."""
        old = self.tasks.pop(task_id, None)
        if old is not None:
            _add(self.unfinished, (old.status, old.origin), -1)
            if old.status == "queued":
                self._unorder(old)

    def _unorder(self, task: TaskRecord) -> None:
        key = _order_key(task)
        index = bisect.bisect_left(self.order, key)
        if index < len(self.order) and self.order[index] == key:
            del self.order[index]
            left = self.queued_types.get(task.task_type, 0) - 1
            if left > 0:
                self.queued_types[task.task_type] = left
            else:
                self.queued_types.pop(task.task_type, None)

    def queued(self) -> list[TaskRecord]:
        """The queued tasks in dispatch order."""
        tasks = self.tasks
        return [tasks[task_id] for _, _, task_id in self.order]

    def position(self, task: TaskRecord) -> int | None:
        """The 1-based queue position of a queued task (``None`` if it is not queued)."""
        if task.status != "queued" or task.task_id not in self.tasks:
            return None
        return bisect.bisect_left(self.order, _order_key(task)) + 1

    def take_seq(self) -> int:
        """The next submission number (tasks and workflows share one sequence)."""
        seq = self.next_seq
        self.next_seq += 1
        return seq


class SharedState(State):
    """The state of an engine that shares its database (PostgreSQL): a mirror of the database, and
    submission numbers from the wall clock (microseconds, increasing in this engine) so that tasks
    submitted one after the other through different engines keep their order."""

    def take_seq(self) -> int:
        seq = max(self.next_seq, int(time.time() * 1_000_000))
        self.next_seq = seq + 1
        return seq


def _order_key(task: TaskRecord) -> tuple[float, int, str]:
    return (-task.order_priority, task.order_seq, task.task_id)


def _add(counts: dict[tuple[str, str], int], key: tuple[str, str], delta: int) -> None:
    """Add ``delta`` to ``counts[key]``, forgetting a key that reaches 0."""
    value = counts.get(key, 0) + delta
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)


@dataclass(slots=True)
class Mark:
    """A point in a ``Changes`` to go back to (``Changes.mark``/``Changes.rewind``)."""

    tasks: dict[str, TaskRecord]
    workflows: dict[str, WorkflowRecord]
    steps: dict[tuple[str, str], StepRecord]
    registrations: dict[str, Registration | None]
    paused: Any
    lengths: tuple[int, int, int, int]
    delays: dict[str, float]
    created: set[str]


class Changes:
    """The changes of one transition, readable before they are committed.

    ``catalog`` (tool name -> catalog entry, or ``None`` when unknown) is used to check the inputs of
    workflow steps as they become ready, and ``step_limit`` (bytes, or ``None``: no limit) bounds each step's
    input and output (``sizes.py``); ``rng`` draws retry jitter.

    Revisions: the first ``put_task`` (``put_workflow``) of a record in a ``Changes`` gives it the
    revision it was read at plus one, which ``rows.put_task`` writes only over that earlier revision; a
    change of a step writes its workflow too (``writes``), so that concurrent changes of one workflow by
    two engines cannot both commit.
    """

    def __init__(
        self,
        state: State,
        now: float,
        *,
        rng: random.Random,
        catalog: dict[str, dict[str, Any]] | None,
        step_limit: int | None = None,
        owner: str | None = None,
    ) -> None:
        self.state = state
        self.now = now
        self.owner = owner
        """The id of the engine recording these changes (``TaskRecord.claimed_by`` of what it starts)."""
        self.rng = rng
        self.catalog = catalog
        self.step_limit = step_limit
        self.tasks: dict[str, TaskRecord] = {}
        self.workflows: dict[str, WorkflowRecord] = {}
        self.steps: dict[tuple[str, str], StepRecord] = {}
        self.registrations: dict[str, Registration | None] = {}
        self.paused: Any = _UNCHANGED
        self.extra: list[rows.Write] = []
        self.deleted: list[str] = []
        self.started: list[tuple[TaskRecord, str]] = []
        """Attempts to start once committed: (the running task, executor id)."""
        self.delays: dict[str, float] = {}
        """Task id -> seconds it must wait before it may start (retry backoff), measured from commit."""
        self.durations: list[tuple[str, float]] = []
        """(task type, execution time) of attempts that completed."""
        self.created: set[str] = set()
        """Ids of tasks that are new: written with a plain INSERT, so an id that is taken in the database
        fails the write instead of replacing the task that has it."""

    # -- going back (one failed transition of a group commit must leave no trace in the others) --

    def mark(self) -> Mark:
        return Mark(
            dict(self.tasks),
            dict(self.workflows),
            dict(self.steps),
            dict(self.registrations),
            self.paused,
            (len(self.extra), len(self.deleted), len(self.started), len(self.durations)),
            dict(self.delays),
            set(self.created),
        )

    def rewind(self, mark: Mark) -> None:
        """Undo everything recorded since ``mark`` was taken."""
        self.tasks, self.workflows, self.steps = mark.tasks, mark.workflows, mark.steps
        self.registrations, self.paused, self.delays, self.created = (
            mark.registrations,
            mark.paused,
            mark.delays,
            mark.created,
        )
        extra, deleted, started, durations = mark.lengths
        del self.extra[extra:], self.deleted[deleted:], self.started[started:], self.durations[durations:]

    # -- reading through the overlay --

    def task(self, task_id: str) -> TaskRecord | None:
        return self.tasks.get(task_id) or self.state.tasks.get(task_id)

    def workflow(self, workflow_id: str) -> WorkflowRecord | None:
        return self.workflows.get(workflow_id) or self.state.workflows.get(workflow_id)

    def step(self, workflow_id: str, step_id: str) -> StepRecord | None:
        changed = self.steps.get((workflow_id, step_id))
        return changed if changed is not None else self.state.steps.get(workflow_id, {}).get(step_id)

    def steps_of(self, workflow_id: str) -> dict[str, StepRecord]:
        """The steps of a workflow by id, in submission order."""
        steps = dict(self.state.steps.get(workflow_id, {}))
        for (owner, step_id), step in self.steps.items():
            if owner == workflow_id:
                steps[step_id] = step
        return dict(sorted(steps.items(), key=lambda item: item[1].position))

    def active_workflows(self) -> list[WorkflowRecord]:
        merged = dict(self.state.workflows)
        merged.update(self.workflows)
        return [w for w in merged.values() if w.status in ACTIVE_WORKFLOW_STATUSES]

    @property
    def is_paused(self) -> bool:
        paused = self.state.paused if self.paused is _UNCHANGED else self.paused
        return paused is not None

    # -- recording --

    def put_task(self, task: TaskRecord) -> None:
        """Record a new version of a task; its ``updated_at`` becomes this transition's time and its
        ``rev`` the next revision of the one it was read at."""
        prior = self.tasks.get(task.task_id)
        rev = prior.rev if prior is not None else task.rev + 1
        if task.updated_at != self.now or task.rev != rev:
            task = replace(task, updated_at=self.now, rev=rev)
        self.tasks[task.task_id] = task

    def put_workflow(self, workflow: WorkflowRecord) -> None:
        """Record a new version of a workflow (its ``rev`` as in ``put_task``)."""
        prior = self.workflows.get(workflow.workflow_id)
        rev = prior.rev if prior is not None else workflow.rev + 1
        if workflow.rev != rev:
            workflow = replace(workflow, rev=rev)
        self.workflows[workflow.workflow_id] = workflow

    def put_step(self, step: StepRecord) -> None:
        self.steps[(step.workflow_id, step.step_id)] = step

    def put_registration(self, worker_id: str, registration: Registration | None) -> None:
        self.registrations[worker_id] = registration

    def set_paused(self, paused: dict[str, Any] | None) -> None:
        self.paused = paused

    def delete_task(self, task_id: str) -> None:
        self.deleted.append(task_id)

    def write(self, write: rows.Write) -> None:
        self.extra.append(write)

    def log(self, task_id: str, message: str, level: str = "info") -> None:
        self.extra.append(rows.add_log(LogLine(task_id, self.now, level, message)))

    # -- committing --

    def writes(self) -> list[rows.Write]:
        """Every statement of this unit of work, for one transaction (a changed step's workflow is
        written too; see the class)."""
        for workflow_id, _ in self.steps:
            if workflow_id not in self.workflows:
                workflow = self.state.workflows.get(workflow_id)
                if workflow is not None:
                    self.put_workflow(workflow)
        writes = [
            rows.insert_task(task) if task.task_id in self.created else rows.put_task(task)
            for task in self.tasks.values()
        ]
        writes += [rows.put_workflow(workflow) for workflow in self.workflows.values()]
        writes += [rows.put_step(step) for step in self.steps.values()]
        for worker_id, registration in self.registrations.items():
            writes.append(
                rows.delete_registration(worker_id)
                if registration is None
                else rows.put_registration(registration)
            )
        if self.paused is not _UNCHANGED:
            writes.append(rows.put_setting("paused", self.paused))
        writes += self.extra
        writes += rows.delete_tasks(self.deleted)
        return writes

    def changed_ids(self) -> tuple[list[str], list[str], bool]:
        """What this unit of work changes, for the other engines of a shared database: the task ids
        (deleted ones too), the workflow ids (call after ``writes``, which adds the workflows of changed
        steps) and whether the pause or a registration changed."""
        tasks = [*self.tasks, *self.deleted]
        workflows = list(dict.fromkeys([*self.workflows, *(workflow_id for workflow_id, _ in self.steps)]))
        return tasks, workflows, self.paused is not _UNCHANGED or bool(self.registrations)

    def apply(self) -> None:
        """Make the committed changes the state; call only after ``writes()`` was committed."""
        state = self.state
        for task in self.tasks.values():
            if task.status in TERMINAL_TASK_STATUSES:
                if task.task_id in state.tasks or task.task_id in self.created:  # it ends now
                    _add(state.finished, (task.status, task.origin), 1)
                state.drop(task.task_id)
            else:
                state.put(task)
        for task_id in self.deleted:
            state.drop(task_id)
        for (workflow_id, step_id), step in self.steps.items():
            state.steps.setdefault(workflow_id, {})[step_id] = step
        for workflow in self.workflows.values():
            if workflow.status in ACTIVE_WORKFLOW_STATUSES:
                state.workflows[workflow.workflow_id] = workflow
                steps = state.steps.setdefault(workflow.workflow_id, {})
                state.steps[workflow.workflow_id] = dict(sorted(steps.items(), key=lambda i: i[1].position))
            else:
                state.workflows.pop(workflow.workflow_id, None)
                state.steps.pop(workflow.workflow_id, None)
        for worker_id, registration in self.registrations.items():
            if registration is None:
                state.registrations.pop(worker_id, None)
            else:
                state.registrations[worker_id] = registration
        if self.paused is not _UNCHANGED:
            state.paused = self.paused
