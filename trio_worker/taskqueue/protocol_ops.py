"""The protocol-task operations of the engine: what the four internal ``tasks:*`` entries call.

``protocol_create`` queues a protocol task (``origin = "mcp"``) in the group commit, like ``task_submit``
but leaner: no schema check (the worker validates the arguments when it runs), no start estimate, no wait
for the dispatch. ``protocol_get`` answers from memory while the task is unfinished (from the database
on a shared one, where another engine may change it), from a small cache of rendered ended tasks, else
from the database. ``protocol_update`` and ``protocol_cancel`` acknowledge only
after their change is committed.

Only protocol tasks are visible here: a queue task's id answers "unknown task", as does an id that was
never created or whose task was deleted; an ended task whose ``task_ttl`` ran out answers "has expired"
even before the sweep deletes it. Both are ``ClientRequestError`` with code -32602 (invalid params).
"""

from __future__ import annotations

import functools
import secrets
from typing import Any

from shared.errors import INVALID_PARAMS, ClientRequestError

from . import protocol_transitions as ptr
from . import queries
from . import transitions as tr
from .core import EngineCore
from .db import DuplicateError, StoreError
from .errors import QueueUnavailableError
from .models import TERMINAL_TASK_STATUSES
from .protocol_view import expired, task_view
from .records import TaskRecord
from .state import Changes

ID_ATTEMPTS = 5
"""How many random ids ``protocol_create`` draws before giving up (one is taken with odds of 2^-144)."""
CANCEL_REASON = "cancelled by tasks/cancel"


def new_protocol_task_id() -> str:
    """``mcp-`` and 144 random bits (24 URL-safe characters): unguessable, and a valid queue task id."""
    return "mcp-" + secrets.token_urlsafe(18)


class _IdTaken(Exception):
    """A drawn id is taken by an unfinished task (draw another)."""


class ProtocolOperations(EngineCore):
    """protocol_create, protocol_get, protocol_update, protocol_cancel."""

    async def protocol_create(
        self,
        tool: str,
        arguments: dict[str, Any],
        client: dict[str, Any],
        answers: dict[str, Any] | None = None,
        run_again: bool = False,
    ) -> dict[str, Any]:
        """Queue a protocol task that calls ``tool`` with ``arguments``; returns its ``Task`` (status
        ``working``) once it is committed.

        ``client`` (``{"capabilities", "protocolVersion"}``) and ``answers`` (key -> ``{"q", "r"}``) are
        stored as given and handed to every run; ``run_again`` says the tool is idempotent or read-only,
        so a run interrupted by a crash may run again.

        Raises:
            ClientRequestError: -32602, an argument of the wrong type.
            QueueUnavailableError: the engine is not serving, or the database refused the commit.

        Cancellation: as ``Committer.transact`` (a cancelled create may have been committed).
        """
        self._require_serving()
        if not isinstance(tool, str) or not 1 <= len(tool) <= 128:
            raise ClientRequestError("tool: must be a tool name of 1 to 128 characters", INVALID_PARAMS)
        for name, value in (("arguments", arguments), ("client", client), ("answers", answers or {})):
            if not isinstance(value, dict):
                raise ClientRequestError(f"{name}: must be an object", INVALID_PARAMS)

        def record(c: Changes, task_id: str) -> TaskRecord:
            if c.task(task_id) is not None:
                raise _IdTaken(task_id)
            ptr.new_protocol_task(
                c,
                task_id=task_id,
                tool=tool,
                arguments=arguments,
                client=client,
                answers=dict(answers or {}),
                run_again=bool(run_again),
            )
            task = c.task(task_id)
            assert task is not None
            return task

        for _ in range(ID_ATTEMPTS):
            try:
                task = await self._committer.transact(
                    functools.partial(record, task_id=new_protocol_task_id())
                )
            except (_IdTaken, DuplicateError):
                continue
            except StoreError as exc:
                raise QueueUnavailableError(f"database: cannot commit: {exc}") from None
            return task_view(task, now=self._clock(), ttl=self.task_ttl)
        raise QueueUnavailableError("could not draw a free task id")

    async def protocol_get(self, task_id: str, owner: str | None = None) -> dict[str, Any]:
        """The ``DetailedTask`` of a protocol task (without ``resultType``). ``owner`` is the subject of
        the principal asking (``None`` without authorization): a task another principal created is
        unknown to it.

        Raises:
            ClientRequestError: -32602, unknown task (or another principal's) or expired task.
        """
        self._require_serving()
        live = None if self.shared else self._live(task_id)  # shared: another engine may change it
        if live is not None:
            _check_owner(live, owner)
            return self._render(live)
        cached = self._ended.get(task_id)  # an ended task no longer changes
        if cached is not None:
            _check_owner(cached[0], owner)
            self._check_expiry(cached[0])
            self._ended.move_to_end(task_id)
            return cached[1]
        task = await self._stored(task_id)
        _check_owner(task, owner)
        return self._render(task)

    async def protocol_update(
        self, task_id: str, input_responses: dict[str, Any], owner: str | None = None
    ) -> dict[str, Any]:
        """Answer input requests of a task in ``input_required``: the responses to pending keys are stored
        (other keys are ignored); once none is pending the task is queued to run again. A task in another
        state is left as it is. Returns ``{}`` once the change is committed.

        Raises:
            ClientRequestError: -32602, unknown or expired task, or ``input_responses`` not an object.
            QueueUnavailableError: the database refused the commit (nothing changed).
        """
        self._require_serving()
        if not isinstance(input_responses, dict):
            raise ClientRequestError("inputResponses: must be an object", INVALID_PARAMS)
        _check_owner(await self._lookup(task_id), owner)

        async def decide() -> None:
            current = await self._current(task_id)
            if current is None or current.status != "input_required":
                return
            c = self._changes()
            if ptr.answer(c, current, input_responses):
                await self._committer.commit(c)

        await self._decide(decide)
        return {}

    async def protocol_cancel(self, task_id: str, owner: str | None = None) -> dict[str, Any]:
        """Cancel a protocol task: a queued or input_required one at once; a running one is recorded
        cancelled at once and its call cancelled in its worker (its executor slot stays taken until the
        call has stopped); an ended one is left as it is. Returns ``{}`` once the change is committed.

        Raises:
            ClientRequestError: -32602, unknown or expired task.
            QueueUnavailableError: the database refused the commit (nothing changed).
        """
        self._require_serving()
        _check_owner(await self._lookup(task_id), owner)

        async def decide() -> None:
            current = await self._current(task_id)
            if current is None:
                return
            run = self._runner.running.get(task_id) if current.status == "running" else None
            c = self._changes()
            if run is not None:
                run.cancel_reason = CANCEL_REASON
                tr.cancel(c, current, CANCEL_REASON, attempt_open=True)
                await self._committer.commit(c)
                run.scope.cancel()
            else:  # queued, input_required, or running on another engine (which stops it when told)
                tr.cancel(c, current, CANCEL_REASON)
                await self._committer.commit(c)

        await self._decide(decide)
        return {}

    # -- lookup --

    def _live(self, task_id: Any) -> TaskRecord | None:
        """The unfinished protocol task of that id, from memory."""
        task = self._state.tasks.get(task_id) if isinstance(task_id, str) else None
        return task if task is not None and task.origin == ptr.ORIGIN else None

    async def _current(self, task_id: str) -> TaskRecord | None:
        """The unfinished protocol task of that id as committed now (from the database when it is
        shared); ``None`` once it ended. Call it under the lock."""
        if not self.shared:
            return self._live(task_id)
        task = await self._store.read(lambda conn: queries.get_task(conn, task_id))
        if task is None or task.origin != ptr.ORIGIN or task.status in TERMINAL_TASK_STATUSES:
            return None
        return task

    async def _lookup(self, task_id: Any) -> TaskRecord:
        live = self._live(task_id)
        if live is not None:
            return live
        cached = self._ended.get(task_id) if isinstance(task_id, str) else None
        if cached is not None:
            self._check_expiry(cached[0])
            return cached[0]
        return await self._stored(task_id)

    async def _stored(self, task_id: Any) -> TaskRecord:
        """The protocol task as stored (an ended one: unfinished ones are in memory).

        Raises:
            ClientRequestError: -32602, unknown or expired.
        """
        if not isinstance(task_id, str) or not task_id.startswith("mcp-") or len(task_id) > 128:
            raise _unknown(task_id)
        task = await self._store.read(lambda conn: queries.get_task(conn, task_id))
        if task is None or task.origin != ptr.ORIGIN:
            raise _unknown(task_id)
        self._check_expiry(task)
        return task

    def _check_expiry(self, task: TaskRecord) -> None:
        if expired(task, self._clock(), self.task_ttl):
            raise ClientRequestError(f"task '{task.task_id}' has expired", INVALID_PARAMS)


def owner_of(task: TaskRecord) -> str | None:
    """The subject of the principal that created a protocol task (kept in its ``client``), or None."""
    principal = (task.client or {}).get("principal")
    subject = principal.get("subject") if isinstance(principal, dict) else None
    return subject if isinstance(subject, str) else None


def _check_owner(task: TaskRecord, owner: str | None) -> None:
    """Refuse another principal's task exactly as an unknown one: never say that it exists."""
    if owner_of(task) != owner:
        raise _unknown(task.task_id)


def _unknown(task_id: Any) -> ClientRequestError:
    return ClientRequestError(f"unknown task '{task_id}'", INVALID_PARAMS)
