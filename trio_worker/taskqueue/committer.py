"""Group commit: how every change of state reaches the disk before anyone is told about it.

Guarantees (they make those of ``core.py`` true): a transition is made under ``Committer.lock``, committed
in one transaction, and only then applied to memory (``on_commit``) and answered — acknowledged means on
disk (synced, with ``synchronous=FULL``). A transition that fails, when it is recorded or when it is
written, changes nothing, on disk or in memory, and fails alone.

Group commit: the frequent transitions (a submission, the end of an attempt, a dispatch) do not commit one
by one. They hand a synchronous function that records them in a ``Changes`` to ``transact``; the
committer task (``serve``) takes everything handed in while the previous transaction was being synced,
runs those functions one after the other on one shared ``Changes`` (each sees the ones before it), commits
the lot in one transaction — one sync — and only then applies it and answers each caller. A function that
raises is rewound out of the shared ``Changes`` and fails alone; if the transaction itself fails, each
function is run again on its own, in its own transaction, so that a bad write fails only its own caller.
The rarer transitions (cancel, priority, pause, workflows, registrations) commit on their own under the
same lock (``commit``).

Shared databases (PostgreSQL): every transaction also tells the other engines what it changed
(``announce``), and a transaction refused because a row changed under it (``StaleError``: it was decided
on a stale mirror) is not lost: the committer has the rows it touched read again (``refresh``) and runs
its transitions again, one by one, each up to ``STALE_RETRIES`` times. A ``commit`` refused that way
raises ``StaleError`` once the rows are read again, for its caller to decide again.

Applying a committed ``Changes`` to memory (and starting the attempts it started) is the ``on_commit``
function the engine hands in; the committer calls it once per committed transaction, under the lock,
before it answers anyone. Everything here runs on the engine's Trio thread; only the writes run on the
store's thread.

Cancellation: see ``transact``. Cancelling ``serve`` fails every transition still waiting with
``QueueUnavailableError`` (nothing of them was written); a stopping committer writes nothing more.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import trio

from .db import Db, SharedStore, StaleError, Store, StoreError, Write
from .errors import QueueUnavailableError
from .state import Changes

logger = logging.getLogger("mcp_supervisor.taskqueue")

T = TypeVar("T")

STALE_RETRIES = 10
"""How many times a transition refused for a stale row is decided again (after reading the row again)."""
STALE_BACKOFF = 0.005
"""``decide`` waits up to this many seconds times the attempt number (at random) before deciding again,
so that two engines changing one row over and over do not keep refusing each other in step."""
COMMIT_RETRIES = (0.1, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to commit a background transition (an attempt's end) the disk refused."""
MAX_BATCH = 1000
"""At most this many transitions share one transaction of the group commit."""


@dataclass(eq=False)
class Request:
    """One transition waiting for the group commit (see ``Committer.transact``)."""

    record: Callable[..., Any]
    catalog: dict[str, dict[str, Any]] | None
    dispatch: bool = False
    lock: Callable[[Db], Any] | None = None
    """A claim (shared database): reads and locks rows first; ``record(c, found)`` gets what it found."""
    done: trio.Event = field(default_factory=trio.Event)
    taken: bool = False
    outcome: tuple[bool, Any] = (False, None)


class Committer:
    """The lock every transition is made under, and the group commit that writes them.

    ``changes()`` makes an empty ``Changes`` on the current state; ``on_commit(changes)`` applies a
    committed one to memory. ``serve`` must be running for ``transact``; ``commit`` only needs the store.
    """

    def __init__(
        self,
        store: Store,
        changes: Callable[[], Changes],
        on_commit: Callable[[Changes], None],
        *,
        announce: Callable[[Changes], list[Write]] | None = None,
        refresh: Callable[[Changes], Awaitable[None]] | None = None,
    ) -> None:
        """``announce(c)``: the statements that tell other engines about ``c`` (added to its
        transaction); ``refresh(c)``: read again, under the lock, the rows ``c`` touched (a shared
        database; ``None``: a stale row is an error like any other)."""
        self.lock = trio.Lock()
        """Held by whoever decides and commits a transition (the committer takes it for each batch)."""
        self.pending: list[Request] = []
        """The transitions handed in and not yet taken into a batch, in arrival order."""
        self.batches = 0
        """How many group-commit transactions were committed (for tests and diagnostics)."""
        self._store = store
        self._changes = changes
        self._on_commit = on_commit
        self._announce = announce
        self._refresh = refresh
        self._pending_work = trio.Event()
        self._serving = False

    async def commit(self, c: Changes) -> None:
        """Commit ``c`` in one transaction on its own, then apply it (``on_commit``).

        Call it holding ``self.lock``.

        Raises:
            StaleError: another engine changed a row ``c`` writes since it was read; nothing changed, and
                the rows ``c`` touched were read again: decide again and commit anew.
            QueueUnavailableError: the database refused the transaction; nothing changed, on disk or in
                memory.

        Cancellation: the database wait is shielded (see ``Store``): a caller cancelled meanwhile sees
        ``trio.Cancelled`` after the transaction ended, and then it has not been applied to memory.
        """
        try:
            await self._persist(c)
        except StaleError:
            if self._refresh is None:
                raise QueueUnavailableError("database: cannot commit: a row changed under it") from None
            await self._refresh(c)
            raise
        except StoreError as exc:
            raise QueueUnavailableError(f"database: cannot commit: {exc}") from None
        self._on_commit(c)

    async def decide(self, decide: Callable[[], Awaitable[T]]) -> T:
        r"""Run ``decide()`` (which reads, decides and ``commit``\ s) under the lock; on a shared database,
        again (up to ``STALE_RETRIES`` times) when its commit was refused because another engine changed a
        row it read (``commit`` has read those rows again by then).

        Raises:
            whatever ``decide`` raised; QueueUnavailableError: the rows kept changing.
        """
        for attempt in range(STALE_RETRIES):
            try:
                async with self.lock:
                    return await decide()
            except StaleError:
                await trio.sleep(random.uniform(0, STALE_BACKOFF * (attempt + 1)))
        raise QueueUnavailableError("database: the rows of this request kept changing; try again")

    async def claim(self, lock: Callable[[Db], T], record: Callable[[Changes, T], None]) -> Changes:
        """One transaction of a shared store that first locks rows (``lock(db)``, on a thread of the
        store: ``SELECT ... FOR UPDATE SKIP LOCKED``), then records transitions on what it found
        (``record(c, found)``, on the Trio thread, under the lock), writes and commits them, and applies
        them. Returns the committed ``Changes``.

        Raises:
            StaleError: a row it writes changed meanwhile (the rows it touched were read again).
            StoreError: the database refused the transaction. Whatever ``record`` raised. In every case
                nothing was written.

        Cancellation: shielded once the transaction has begun (see ``PgStore.claim``).
        """
        store = cast(SharedStore, self._store)
        async with self.lock:
            await trio.lowlevel.checkpoint_if_cancelled()
            made: list[Changes] = []

            def decide(found: T) -> list[Write]:
                c = self._changes()
                record(c, found)
                made.append(c)
                writes = c.writes()
                if writes and self._announce is not None:
                    writes += self._announce(c)
                return writes

            try:
                await store.claim(lock, decide)
            except StaleError:
                if made and self._refresh is not None:
                    await self._refresh(made[0])
                raise
            self._on_commit(made[0])
            return made[0]

    async def _persist(self, c: Changes) -> None:
        """Write ``c`` in one transaction (with its announcement); no-op when it writes nothing."""
        writes = c.writes()
        if writes:
            if self._announce is not None:
                writes += self._announce(c)
            await self._store.write(writes)

    async def transact(
        self,
        record: Callable[..., T],
        *,
        catalog: dict[str, dict[str, Any]] | None = None,
        dispatch: bool = False,
        background: bool = False,
        lock: Callable[[Db], Any] | None = None,
    ) -> T:
        """Record a transition with ``record(changes)`` in the next group commit; return what it returned
        once the transaction holding it is committed and applied to memory.

        ``record`` runs on the Trio thread under the lock, must not await, and must change nothing but the
        ``Changes`` it is given (it may be run a second time, alone, if its batch failed to commit).
        ``dispatch`` marks the scheduler's own transition, which goes first in its batch; on a shared
        database it comes with ``lock``, which the batch's transaction runs first (on the store's thread:
        ``SELECT ... FOR UPDATE SKIP LOCKED``), and ``record`` is called as ``record(changes, found)``. A
        ``background`` transition (an attempt's end, a dispatch: nobody is waiting for an answer) the disk
        refuses is recorded again after each of the ``COMMIT_RETRIES`` waits before it fails.

        Raises:
            whatever ``record`` raised (nothing of it was written); ``StoreError`` if its transaction
            could not be committed (nothing of it was written), or, for a ``background`` one,
            ``QueueUnavailableError`` once the retries are spent; ``QueueUnavailableError`` if the
            committer stopped first.

        Cancellation: a caller cancelled before its batch started is taken out and nothing is written. Once
        its batch has started, the transition is committed (or fails) regardless, the caller waits for
        that, shielded, and then sees ``trio.Cancelled``: a cancelled submission may therefore have been
        committed, exactly as if its answer had been lost on the way.
        """
        delays = COMMIT_RETRIES if background else ()
        for attempt in range(len(delays) + 1):
            try:
                return await self._transact_once(record, catalog, dispatch, lock)
            except StoreError as exc:
                if not background:
                    raise
                if attempt == len(delays):
                    raise QueueUnavailableError(f"database: cannot commit: {exc}") from None
                logger.error("task queue: commit failed (%s); trying again in %g s", exc, delays[attempt])
                await trio.sleep(delays[attempt])
        raise AssertionError("unreachable")

    async def _transact_once(
        self,
        record: Callable[..., T],
        catalog: dict[str, dict[str, Any]] | None,
        dispatch: bool,
        lock: Callable[[Db], Any] | None,
    ) -> T:
        if not self._serving:
            await trio.lowlevel.checkpoint_if_cancelled()  # a stopping engine's runs see their cancellation
            raise QueueUnavailableError("the task queue is not running (its engine is not serving)")
        request = Request(record, catalog, dispatch, lock)
        self.pending.append(request)
        self._pending_work.set()
        try:
            await request.done.wait()
        except trio.Cancelled:
            if not request.taken:
                if request in self.pending:  # (a stopping committer has dropped them all already)
                    self.pending.remove(request)
                raise
            with trio.CancelScope(shield=True):
                await request.done.wait()
            raise
        ok, value = request.outcome
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The committer: one transaction for everything handed to ``transact`` since the last one.

        Returns: never returns unless cancelled; ``task_status.started()`` once ``transact`` is accepted.
        """
        batch: list[Request] = []
        self._serving = True
        try:
            task_status.started()
            while True:
                await self._pending_work.wait()
                self._pending_work = trio.Event()
                while self.pending:
                    batch = self._take_batch()
                    async with self.lock:
                        # The lock may have been handed over just as the engine was cancelled: a
                        # stopping engine writes nothing more (its runs are already gone).
                        await trio.lowlevel.checkpoint_if_cancelled()
                        await self._commit_batch(batch)
                    batch = []
        finally:
            self._serving = False
            stopped = QueueUnavailableError("the task queue stopped before this change was committed")
            for request in [*batch, *self.pending]:
                if not request.done.is_set():
                    request.outcome = (False, stopped)
                    request.done.set()
            self.pending.clear()

    def _take_batch(self) -> list[Request]:
        """The next batch: the scheduler's dispatch first (it reads the committed state directly), then
        the rest in arrival order; several dispatch requests share one run."""
        taken, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
        if self.pending:
            self._pending_work.set()
        for request in taken:
            request.taken = True
        dispatches = [r for r in taken if r.dispatch]
        return dispatches + [r for r in taken if not r.dispatch]

    async def _commit_batch(self, batch: list[Request]) -> None:
        c = self._changes()
        outcomes: list[tuple[bool, Any]] = []
        lock = next((r.lock for r in batch if r.dispatch and r.lock is not None), None)

        def record_all(found: Any = None) -> None:
            dispatched: tuple[bool, Any] | None = None
            for request in batch:
                if request.dispatch and dispatched is not None:
                    outcomes.append(dispatched)
                    continue
                outcome = _record(c, request, found)
                if request.dispatch:
                    dispatched = outcome
                outcomes.append(outcome)

        try:
            if lock is None:
                record_all()
                await self._write(c)
            else:
                await self._write_claimed(c, lock, record_all)
        except StoreError as exc:
            if isinstance(exc, StaleError) and self._refresh is not None:
                await self._refresh(c)
                await self._commit_one_by_one(batch)
                return
            if len(batch) == 1:
                outcomes = [(False, exc)]
            else:
                logger.warning(
                    "task queue: a group commit of %d transitions failed (%s); committing them one by one",
                    len(batch),
                    exc,
                )
                await self._commit_one_by_one(batch)
                return
        for request, outcome in zip(batch, outcomes, strict=True):
            request.outcome = outcome
            request.done.set()

    async def _commit_one_by_one(self, batch: list[Request]) -> None:
        """After a failed group commit: each transition in its own transaction, so that only the ones
        whose own writes fail are refused (one refused for a stale row is decided again, after the rows
        it touched were read again, up to ``STALE_RETRIES`` times)."""
        for request in batch:
            for attempt in range(1, STALE_RETRIES + 1):
                c = self._changes()
                recorded: list[tuple[bool, Any]] = []

                def record_one(
                    found: Any = None,
                    c: Changes = c,
                    recorded: list[Any] = recorded,
                    request: Request = request,
                ) -> None:
                    recorded.append(_record(c, request, found))

                try:
                    if request.lock is not None:
                        await self._write_claimed(c, request.lock, record_one)
                    else:
                        record_one()
                        if recorded[0][0]:
                            await self._write(c)
                    outcome = recorded[0]
                except StaleError as exc:
                    if self._refresh is not None and attempt < STALE_RETRIES:
                        await self._refresh(c)
                        continue
                    outcome = (False, exc)
                except StoreError as exc:
                    outcome = (False, exc)
                break
            request.outcome = outcome
            request.done.set()

    async def _write_claimed(
        self, c: Changes, lock: Callable[[Db], Any], record: Callable[[Any], None]
    ) -> None:
        """Commit ``c`` in the transaction of a claim: ``lock`` runs first, ``record(found)`` fills ``c``
        on the Trio thread, then ``c`` is written, committed and applied.

        Raises:
            StoreError: nothing was written or applied.
        """
        store = cast(SharedStore, self._store)

        def decide(found: Any) -> list[Write]:
            record(found)
            writes = c.writes()
            if writes and self._announce is not None:
                writes += self._announce(c)
            return writes

        await store.claim(lock, decide)
        self.batches += 1
        self._on_commit(c)

    async def _write(self, c: Changes) -> None:
        """Commit the writes of a batch (if it has any) and apply it.

        Raises:
            StoreError: nothing was written or applied.
        """
        await self._persist(c)
        self.batches += 1
        self._on_commit(c)


def _record(c: Changes, request: Request, found: Any = None) -> tuple[bool, Any]:
    """Run one request's ``record`` on the shared ``c`` (with what its claim ``found``, for a claim); one
    that raises leaves no trace in it."""
    mark = c.mark()
    c.catalog = request.catalog
    try:
        return True, request.record(c, found) if request.lock is not None else request.record(c)
    except Exception as exc:
        c.rewind(mark)
        return False, exc
