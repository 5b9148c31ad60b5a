"""The workflow tools of the engine: submit, status, cancel, list, dependencies and result."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import trio

from . import queries
from . import transitions as tr
from .core import CANCEL_WAIT, EngineCore
from .errors import ConflictError, InvalidRequestError, NotFoundError
from .models import (
    MAX_PRIORITY,
    MAX_STEPS,
    WORKFLOW_LIST_MAX,
    WORKFLOW_STATUSES,
    GraphFormat,
    WorkflowStep,
    check_id,
    check_object,
    check_range,
    check_reason,
    check_statuses,
    check_strings,
    parse,
)
from .payload import check_arguments
from .queries import WorkflowQuery
from .records import StepRecord, WorkflowRecord
from .render import Node, to_dot, to_mermaid
from .runner import Run
from .scheduling import mean_durations
from .sizes import clipped
from .views import page_view, rounded, seconds, step_view, workflow_summary
from .workflows import build_graph, critical_path, levels

RECENT_GRAPH_STEPS = 100
"""``recent_workflows`` leaves out the graph of a workflow with more steps than this (too many to draw)."""


class WorkflowOperations(EngineCore):
    """workflow_submit, workflow_status, workflow_cancel, workflow_list, workflow_dependencies,
    workflow_result."""

    async def workflow_submit(
        self,
        name: str,
        steps: list[WorkflowStep] | list[dict[str, Any]],
        *,
        workflow_id: str | None = None,
        priority: float = 1.0,
        tags: list[str] | None = None,
        dependencies: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Submit a DAG of steps. It is checked first: unknown steps or tools, references that do not
        parse, cycles (``cycle: a -> b -> a``) and inputs a tool refuses are refused. It starts once
        every workflow in ``dependencies`` completed (and fails if one of them fails).

        Raises:
            InvalidRequestError: the graph or an input is invalid. NotFoundError: an unknown dependency.
            ConflictError: the id is taken, or a dependency already failed or was cancelled.
        """
        self._require_serving()
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            raise InvalidRequestError("name: must be a string of 1 to 200 characters")
        if workflow_id is not None:
            check_id(workflow_id, "workflow_id")
        check_range(priority, "priority", -MAX_PRIORITY, MAX_PRIORITY)
        tags = check_strings(tags)
        deps = check_strings(dependencies, "dependencies", MAX_STEPS)
        for dependency in deps:
            check_id(dependency, "dependencies")
        metadata = check_object(metadata, "metadata")
        if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
            raise InvalidRequestError(f"steps: must be a list of 1 to {MAX_STEPS} steps")
        parsed = [parse(WorkflowStep, step, f"steps[{index}]") for index, step in enumerate(steps)]
        graph = build_graph(parsed)
        catalog = await self._router.catalog()
        records: list[StepRecord] = []
        for index, step in enumerate(parsed):
            entry = catalog.get(step.action)
            if entry is None:
                catalog = await self._router.catalog(need=step.action)
                entry = catalog.get(step.action)
            if entry is None:
                raise InvalidRequestError(f"steps[{index}].action: unknown tool {step.action!r}")
            check_arguments(
                entry.get("inputSchema"), step.inputs, f"steps[{index}].inputs", references_allowed=True
            )
            retries, factor, backoff = tr.retry_settings(step.retry_policy, entry)
            records.append(
                StepRecord(
                    workflow_id="",
                    step_id=step.step_id,
                    position=index,
                    action=step.action,
                    inputs=step.inputs,
                    depends_on=list(graph.depends_on[step.step_id]),
                    timeout=step.timeout,
                    max_retries=retries,
                    backoff_factor=factor,
                    backoff=backoff,
                    status="pending",
                )
            )
        chosen = workflow_id

        async def decide() -> str:
            workflow_id = chosen
            if workflow_id is None:
                workflow_id = await self._new_id("wf", queries.workflow_exists)
            elif workflow_id in self._state.workflows or await self._store.read(
                functools.partial(queries.workflow_exists, workflow_id=workflow_id)
            ):
                raise ConflictError(f"workflow_id: a workflow {workflow_id!r} already exists")
            known = await self._store.read(lambda conn: queries.workflow_statuses(conn, deps))
            for dependency in deps:
                status = (
                    self._state.workflows[dependency].status
                    if dependency in self._state.workflows
                    else known.get(dependency)
                )
                if status is None:
                    raise NotFoundError(f"dependencies: unknown workflow {dependency!r}")
                if status in ("failed", "cancelled"):
                    raise ConflictError(
                        f"dependencies: workflow {dependency!r} {status}; this workflow could never start"
                    )
            c = self._changes(catalog)
            workflow = WorkflowRecord(
                workflow_id=workflow_id,
                seq=self._state.take_seq(),
                name=name,
                priority=float(priority),
                tags=tags,
                dependencies=deps,
                metadata=metadata,
                status="pending",
                submitted_at=c.now,
            )
            c.put_workflow(workflow)
            for record in records:
                c.put_step(replace(record, workflow_id=workflow_id))
            for dependency in deps:  # written too: an engine ending it concurrently must see this one
                running = c.workflow(dependency)
                if running is not None:
                    c.put_workflow(running)
            tr.start_workflow_if_ready(c, workflow, known)
            await self._committer.commit(c)
            return workflow_id

        workflow_id = await self._decide(decide)
        await self._scheduler.dispatch()
        current, current_steps = await self._find_workflow(workflow_id)
        return {
            "success": True,
            "workflow_id": workflow_id,
            "name": name,
            "status": current.status,
            "step_count": len(records),
            "levels": levels(graph),
            "started_steps": [s.step_id for s in current_steps.values() if s.status in ("queued", "running")],
            "waiting_for": [
                d
                for d in deps
                if d in self._state.workflows and self._state.workflows[d].status != "completed"
            ],
        }

    async def _step_views(self, steps: dict[str, StepRecord]) -> list[dict[str, Any]]:
        now = self._clock()
        finished = [s.task_id for s in steps.values() if s.task_id and s.task_id not in self._state.tasks]
        attempts = (
            await self._store.read(lambda conn: queries.attempt_counts(conn, finished)) if finished else {}
        )
        views = []
        for step in steps.values():
            task = self._state.tasks.get(step.task_id) if step.task_id else None
            run = self._runner.running.get(step.task_id) if step.task_id else None
            progress = run.progress if run is not None else (task.progress if task is not None else None)
            views.append(step_view(step, task, progress, attempts.get(step.task_id or ""), now))
        return views

    def _step_durations(self, steps: dict[str, StepRecord]) -> dict[str, tuple[float | None, str]]:
        """Each step's duration for the critical path and where it comes from."""
        means = mean_durations(self._scheduler.durations)
        now = self._clock()
        durations: dict[str, tuple[float | None, str]] = {}
        for step_id, step in steps.items():
            if step.status in ("completed", "failed", "cancelled"):
                if step.started_at is None:
                    durations[step_id] = (0.0, "not run")
                else:
                    durations[step_id] = (seconds(step.started_at, step.ended_at), "measured")
            elif step.action in means:
                elapsed = now - step.started_at if step.started_at is not None else 0.0
                durations[step_id] = (round(max(means[step.action], elapsed), 6), "average of its tool")
            else:
                durations[step_id] = (None, "unknown")
        return durations

    def _critical(self, steps: dict[str, StepRecord]) -> dict[str, Any]:
        durations = self._step_durations(steps)
        graph = tr.graph_of(steps)
        found = critical_path(graph, {k: v[0] for k, v in durations.items()})
        return {
            "steps": found[0] if found else None,
            "duration": rounded(found[1]) if found else None,
            "unknown_durations": [k for k, v in durations.items() if v[0] is None],
        }

    async def workflow_status(
        self, workflow_id: str, include_steps: bool = True, include_metrics: bool = False
    ) -> dict[str, Any]:
        """A workflow's status, progress (the mean of its steps' progress) and steps.

        Raises:
            NotFoundError: no such workflow.
        """
        self._require_serving()
        workflow, steps = await self._find_workflow(workflow_id)
        views = await self._step_views(steps)
        answer = workflow_summary(workflow, views, self._clock())
        answer["metadata"] = workflow.metadata
        if include_steps:
            answer["steps"] = views
        if include_metrics:
            times = [v["execution_time"] for v in views if v["execution_time"] is not None]
            answer["metrics"] = {
                "execution_time": answer["execution_time"],
                "wait_time": seconds(workflow.submitted_at, workflow.started_at),
                "total_step_time": rounded(sum(times)) if times else None,
                "critical_path": self._critical(steps),
                "levels": levels(tr.graph_of(steps)),
            }
        return answer

    async def workflow_cancel(
        self, workflow_id: str, reason: str | None = None, force: bool = False
    ) -> dict[str, Any]:
        """Cancel a workflow: steps not started are cancelled, queued step tasks cancelled, running ones
        cancelled in their workers (``force``: without waiting for them to stop).

        Raises:
            NotFoundError: no such workflow.
        """
        self._require_serving()
        reason = check_reason(reason) or "cancelled by workflow_cancel"
        workflow, _ = await self._find_workflow(workflow_id)
        catalog = await self._router.catalog_quietly()
        why = f"workflow cancelled ({reason})"

        async def decide() -> tuple[list[Run], list[str]] | None:
            current = self._state.workflows.get(workflow.workflow_id)
            if current is None:
                return None
            c = self._changes(catalog)
            to_stop = tr.cancel_workflow(c, current, reason, force=force)
            elsewhere = []
            for task_id in to_stop:
                task = c.task(task_id)
                if task_id not in self._runner.running and task is not None and task.status == "running":
                    c.put_task(replace(task, cancel_requested=why))  # runs on another engine: ask it
                    elsewhere.append(task_id)
            await self._committer.commit(c)
            runs = [self._runner.running[t] for t in to_stop if t in self._runner.running]
            for run in runs:
                run.cancel_reason = why
                run.scope.cancel()
            return runs, elsewhere

        decided = await self._decide(decide)
        if decided is None:
            return {
                "success": False,
                "workflow_id": workflow.workflow_id,
                "status": workflow.status,
                "message": f"the workflow already ended: {workflow.status}",
            }
        runs, elsewhere = decided
        if not force:
            with trio.move_on_after(CANCEL_WAIT):
                for run in runs:
                    await run.done.wait()
                for task_id in elsewhere:
                    await self._stopped_elsewhere(task_id)
        final, steps = await self._find_workflow(workflow.workflow_id)
        return {
            "success": True,
            "workflow_id": final.workflow_id,
            "status": final.status,
            "forced": force,
            "cancelled_steps": [s.step_id for s in steps.values() if s.status == "cancelled"],
            "completed_steps": [s.step_id for s in steps.values() if s.status == "completed"],
            "stopping_steps": [s.step_id for s in steps.values() if s.status in ("queued", "running")],
        }

    async def workflow_list(
        self,
        status_filter: Any = None,
        peer_filter: str | None = None,
        tag_filter: list[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Workflows, newest first. ``peer_filter``: only those with a step that ran on that executor.

        Raises:
            InvalidRequestError: an unknown status, or ``limit`` (1-1000) / ``offset`` out of range.
        """
        self._require_serving()
        statuses = check_statuses(status_filter, "status_filter", WORKFLOW_STATUSES)
        check_range(limit, "limit", 1, WORKFLOW_LIST_MAX, integer=True)
        check_range(offset, "offset", 0, 1e12, integer=True)
        if peer_filter is not None and not isinstance(peer_filter, str):
            raise InvalidRequestError("peer_filter: must be an executor id")
        tags = check_strings(tag_filter, "tag_filter")
        query = WorkflowQuery(statuses, peer_filter, tags or None, limit, offset)
        page, total = await self._store.read(lambda conn: queries.list_workflows(conn, query))
        now = self._clock()
        workflows = []
        for workflow, steps in page:
            if workflow.workflow_id in self._state.workflows:
                workflow = self._state.workflows[workflow.workflow_id]
                current = dict(self._state.steps.get(workflow.workflow_id, {}))
            else:
                current = {s.step_id: s for s in steps}
            workflows.append(workflow_summary(workflow, await self._step_views(current), now))
        return page_view("workflows", workflows, total, offset)

    async def workflow_dependencies(self, workflow_id: str, format: GraphFormat = "json") -> dict[str, Any]:
        """The workflow's graph: ``dag`` in the asked format (``json``: each step's dependencies and
        dependants; ``dot``: Graphviz text; ``mermaid``: flowchart text), ``nodes``, ``edges`` (dependency
        -> dependant) and the ``critical_path`` from measured durations (``null`` while a step's duration
        cannot be known: a tool that never completed before).

        Raises:
            NotFoundError: no such workflow. InvalidRequestError: an unknown format.
        """
        self._require_serving()
        if format not in ("json", "dot", "mermaid"):
            raise InvalidRequestError(f"format: unknown format {format!r}; allowed: json, dot, mermaid")
        workflow, steps = await self._find_workflow(workflow_id)
        graph = tr.graph_of(steps)
        views = {v["step_id"]: v for v in await self._step_views(steps)}
        durations = self._step_durations(steps)
        critical = self._critical(steps)
        nodes = [
            {
                "id": step_id,
                "action": step.action,
                "status": views[step_id]["status"],
                "task_id": step.task_id,
                "depends_on": list(step.depends_on),
                "duration": durations[step_id][0],
                "duration_source": durations[step_id][1],
            }
            for step_id, step in steps.items()
        ]
        edges = graph.edges()
        dag: Any
        if format == "json":
            dependants = graph.dependants()
            dag = {
                step_id: {"depends_on": list(graph.depends_on[step_id]), "dependants": dependants[step_id]}
                for step_id in graph.order
            }
        else:
            drawn = [Node(n["id"], n["action"], n["status"], n["duration"]) for n in nodes]
            dag = (
                to_dot(workflow.name, drawn, edges, critical["steps"])
                if format == "dot"
                else to_mermaid(drawn, edges, critical["steps"])
            )
        return {
            "workflow_id": workflow.workflow_id,
            "format": format,
            "dag": dag,
            "nodes": nodes,
            "edges": [{"from": source, "to": target} for source, target in edges],
            "levels": levels(graph),
            "critical_path": critical,
            "workflow_dependencies": list(workflow.dependencies),
        }

    async def recent_workflows(self, limit: int) -> dict[str, Any]:
        """The ``limit`` newest workflows as ``workflow_list`` shows them, each with a ``graph``: the
        ``nodes``, ``edges``, ``levels`` and ``critical_path`` of ``workflow_dependencies``, or ``None``
        for one of more than ``RECENT_GRAPH_STEPS`` steps or one deleted meanwhile; and ``total_count``.
        What the supervisor's ``/ui`` page draws (the ``tasks:workflows`` entry).

        Raises:
            InvalidRequestError: ``limit`` out of 1-``WORKFLOW_LIST_MAX``.
        """
        listed = await self.workflow_list(limit=limit)
        for workflow in listed["workflows"]:
            workflow["graph"] = None
            if workflow["step_count"] > RECENT_GRAPH_STEPS:
                continue
            try:
                graph = await self.workflow_dependencies(workflow["workflow_id"])
            except NotFoundError:  # the retention sweep deleted it since the list was read
                continue
            workflow["graph"] = {key: graph[key] for key in ("nodes", "edges", "levels", "critical_path")}
        return {"workflows": listed["workflows"], "total_count": listed["total_count"]}

    async def workflow_result(
        self, workflow_id: str, include_outputs: bool = True, include_logs: bool = False
    ) -> dict[str, Any]:
        """The outcome of a workflow: each completed step's output, each failed step's error, and the
        outputs of its final steps (those no other step depends on).

        Raises:
            NotFoundError: no such workflow.
        """
        self._require_serving()
        workflow, steps = await self._find_workflow(workflow_id)
        views = await self._step_views(steps)
        dependants = tr.graph_of(steps).dependants()
        finished = workflow.status in ("completed", "failed", "cancelled")
        answer: dict[str, Any] = {
            "workflow_id": workflow.workflow_id,
            "name": workflow.name,
            "status": workflow.status,
            "finished": finished,
            "success": workflow.status == "completed",
            "error": workflow.error,
            "execution_time": seconds(workflow.started_at, workflow.ended_at),
            "steps": [
                {k: v[k] for k in ("step_id", "status", "task_id", "worker_id", "execution_time", "error")}
                for v in views
            ],
            "errors": {s.step_id: s.error for s in steps.values() if s.error},
        }
        if include_outputs:  # clipped when large; task_result gives an output whole
            outputs = {
                s.step_id: clipped(s.output, f"task_result(task_id={s.task_id!r})")
                for s in steps.values()
                if s.status == "completed"
            }
            answer["outputs"] = outputs
            answer["final_outputs"] = {k: v for k, v in outputs.items() if not dependants[k]}
        if include_logs:
            logs = await self._logs([s.task_id for s in steps.values() if s.task_id])
            answer["logs"] = {s.step_id: logs.get(s.task_id or "", []) for s in steps.values()}
        return answer
