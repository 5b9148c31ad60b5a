"""The task queue's SQLite database, run on one dedicated thread so the Trio loop never waits on disk.

One ``SqliteStore`` (the ``db.Store`` of a path) owns one thread and one ``sqlite3`` connection, opened on
that thread and never used from another. The Trio side hands it jobs (``write``, ``read``) and waits on a ``trio.Event`` the thread sets
through the Trio token, so the event loop keeps running while SQLite writes and syncs.

Durability: WAL journal, ``synchronous=FULL`` by default — each commit is synced to the WAL file before
``write`` returns, so a state change the engine acknowledged survives a kill -9 *and* a power loss.
(``NORMAL`` survives a process crash but may lose the last commits on power loss; it is accepted for
tests and for users who prefer speed.) A ``write`` is one transaction: all of its statements or none.

Exclusivity: the store holds an ``flock`` on ``<db>.lock`` while it is open, so two task queues can never
run on one database (which would run tasks twice). The kernel drops the lock when the process dies.

Privacy: the database, its ``-wal``, ``-shm`` and ``.lock`` files are mode 0600 whatever the folder's mode
or the umask: the database is created (or tightened) 0600 before SQLite opens it, and SQLite gives its WAL
and shared-memory files the database's own mode.

Cancellation: a database job that has started always finishes; a caller cancelled while waiting for it
gets ``trio.Cancelled`` after the job completed (the wait is shielded), so an acknowledged write and the
caller's view of it cannot disagree.

Errors: ``sqlite3`` errors become ``db.StoreError`` (a taken primary key ``DuplicateError``, a checked
write that changed no row ``StaleError`` — which only a bug could cause here: this engine is the only
writer and its memory is the truth).

What runs on the thread lives elsewhere: the tables in ``schema.py``, the statements that write rows in
``rows.py``, the reads in ``queries.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import trio

from shared.statedir import lock_path

from .db import SQLITE, Db, DuplicateError, StaleError, StoreError, Write
from .errors import QueueUnavailableError
from .rows import CHECKED
from .schema import ensure_sqlite

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]


class SqliteConnection(sqlite3.Connection):
    """A ``sqlite3`` connection that says its dialect (``db.Db``)."""

    dialect = SQLITE


class SqliteStore:
    """The database of one engine: a dedicated thread with its own connection.

    ``open`` must be awaited (on the Trio thread) before anything else and ``close`` at the end; every
    other coroutine runs one job on the database thread and returns its result.
    """

    shared = False

    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.synchronous = synchronous
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: SqliteConnection | None = None  # touched only on the database thread
        self._lock_file: int | None = None

    # -- lifecycle --

    async def open(self) -> None:
        """Start the database thread, take the lock, open (or create) the database and its schema.

        Raises:
            QueueUnavailableError: another process holds the database, or it cannot be opened.
        """
        self._thread = threading.Thread(
            target=self._serve, name=f"taskqueue-db:{self.path.name}", daemon=True
        )
        self._thread.start()
        try:
            await self._run(self._connect)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection, release the lock and end the thread (waits for queued jobs first)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)

    def _serve(self) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                job()
        finally:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
            if self._lock_file is not None:
                os.close(self._lock_file)  # closing drops the flock
                self._lock_file = None

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise QueueUnavailableError(
                f"database: {self.path} is in use by another task queue (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_file = fd
        _private_files(self.path)
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=True, factory=SqliteConnection
            )
        except sqlite3.Error as exc:
            raise QueueUnavailableError(f"database: cannot open {self.path}: {exc}") from None
        conn.row_factory = sqlite3.Row
        self._conn = conn
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise QueueUnavailableError(f"database: {self.path} cannot use WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA busy_timeout = 5000")
            ensure_sqlite(conn, str(self.path))
        except sqlite3.Error as exc:
            raise QueueUnavailableError(f"database: cannot use {self.path}: {exc}") from None

    # -- jobs --

    async def _run(self, job: Callable[[], T]) -> T:
        """Run ``job`` on the database thread and return its result (or raise its exception)."""
        if self._thread is None:
            raise QueueUnavailableError("the task queue database is closed")
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(("value", job()))
            except BaseException as exc:  # handed to the waiting Trio task
                outcome.append(("error", exc))
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass  # nobody is waiting any more

        self._jobs.put(run)
        with trio.CancelScope(shield=True):
            await done.wait()
        kind, value = outcome[0]
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    async def read(self, query: Callable[[Db], T]) -> T:
        """Run a read-only ``query(connection)`` on the database thread.

        Raises:
            StoreError: the database refused the query.
        """

        def job() -> T:
            assert self._conn is not None
            try:
                return query(self._conn)
            except sqlite3.Error as exc:
                raise _mapped(exc) from None

        return await self._run(job)

    async def write(self, writes: Iterable[Write]) -> None:
        """Run ``writes`` as one transaction and commit it (synced to disk as ``synchronous`` says).

        Raises:
            StoreError: nothing was written (the transaction was rolled back); ``DuplicateError`` for a
                taken primary key, ``StaleError`` for a checked write that changed no row.
        """
        batch = list(writes)
        if not batch:
            return
        await self._run(lambda: self._apply(batch))

    def _apply(self, writes: list[Write]) -> None:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in writes:
                    if conn.execute(sql, params).rowcount == 0 and sql in CHECKED:
                        raise StaleError(f"database: a row changed since it was read ({sql.split()[2]})")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _mapped(exc) from None


def _mapped(exc: sqlite3.Error) -> StoreError:
    """The store's error for a ``sqlite3`` one."""
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return DuplicateError(str(exc))
    return StoreError(str(exc))


def _private_files(path: Path) -> None:
    """Create ``path`` empty with mode 0600 when it does not exist, and make it and its SQLite companions
    (``-wal``, ``-shm``, ``-journal``) mode 0600 when they do (a database from an older version)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), 0o600)
