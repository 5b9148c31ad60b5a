"""The task queue's PostgreSQL database: a pool of sync psycopg connections used from Trio's worker threads,
shared by every engine that names the same database.

psycopg's async API runs on asyncio only, so every job here is a plain function run by
``trio.to_thread.run_sync`` (at most ``POOL_SIZE`` at once) on a connection of a ``psycopg_pool`` pool;
a psycopg connection may move between threads, one job at a time. The Trio loop never waits on the
network or the server's disk.

Durability: ``synchronous="FULL"`` keeps the server's ``synchronous_commit = on``: a commit is flushed to
the server's WAL before ``write`` returns. ``NORMAL`` sets it ``off`` (a server crash may lose the last
commits, never corrupt). A ``write`` is one transaction: all of its statements or none.

Sharing: nothing here is exclusive. Every engine's writes are checked (``rows.CHECKED``: a write that
finds its row changed fails the transaction with ``StaleError``), claims lock rows with ``FOR UPDATE
SKIP LOCKED`` (``claim``), and ``announce`` adds a ``pg_notify`` to a transaction so that the other engines'
listeners (``listen``: its own connection on its own thread) learn which rows changed, at commit.

Statements are the ``?``-placeholder SQL of ``rows.py`` and ``queries.py``; ``PgDb`` turns them into
psycopg's ``%s`` and gives rows that answer ``row["name"]`` and ``row[0]`` as ``sqlite3.Row`` does. NUL
characters, which PostgreSQL text cannot hold, are replaced by U+FFFD in string parameters.

Errors: psycopg's become ``db.StoreError``: a unique violation ``DuplicateError``; a deadlock or a
serialization failure ``StaleError`` (nothing was written; re-read and decide again); anything else
``StoreError``. A database that cannot be reached or used at ``open`` is ``QueueUnavailableError``
naming the URL without its password.

Cancellation: a job that has started always finishes (the thread is waited for, shielded) and the caller
sees ``trio.Cancelled`` afterwards, as with SQLite.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import trio

from shared.dburl import redact

from .db import POSTGRESQL, Db, DuplicateError, StaleError, StoreError, Write
from .errors import QueueUnavailableError
from .rows import CHECKED
from .schema import ensure_postgresql

try:
    import psycopg
    import psycopg.errors
    from psycopg_pool import ConnectionPool
except ImportError:  # pragma: no cover - the [postgresql] extra is not installed
    psycopg = None  # type: ignore[assignment]

logger = logging.getLogger("mcp_supervisor.taskqueue")

T = TypeVar("T")

POOL_SIZE = 6
"""Connections (and worker threads) one engine uses at most, besides its listener's."""
CONNECT_TIMEOUT = 10
"""Seconds to wait for the server when connecting."""
LOCK_TIMEOUT = "5s"
"""The longest a statement waits for a row lock another engine holds (then the transaction fails)."""
IDLE_IN_TRANSACTION_TIMEOUT = "30s"
"""A connection idle inside a transaction this long is ended by the server (its locks released): a
stopped engine (SIGSTOP) cannot hold rows forever."""
CHANNEL = "mcp_taskqueue"
"""The ``LISTEN/NOTIFY`` channel of the task queue, followed by ``.`` and the schema its tables are in
(the first of the connection's ``search_path``): task queues in two schemas of one database do not hear
each other."""
NOTIFY_LIMIT = 7900
"""Bytes of one notification payload (PostgreSQL's limit is 8000)."""
LISTEN_POLL = 0.2
"""Seconds the listener waits for notifications before it looks whether it should stop."""
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to reconnect the listener (the last one repeats)."""


class Row:
    """A result row: ``row["name"]``, ``row[0]``, ``dict(row)`` and iteration, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: str | int) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    description = cursor.description or ()
    index = {column.name: position for position, column in enumerate(description)}
    return functools.partial(Row, index=index)


@functools.lru_cache(maxsize=4096)
def _sql(statement: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` doubled)."""
    return statement.replace("%", "%%").replace("?", "%s")


def _params(parameters: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        value.replace("\x00", "\ufffd") if type(value) is str and "\x00" in value else value
        for value in parameters
    )


class PgDb:
    """A psycopg connection as the reads and writes see it (``db.Db``)."""

    dialect = POSTGRESQL

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self.conn.execute(_sql(sql), _params(parameters))


def _mapped(exc: Exception) -> StoreError:
    """The store's error for a psycopg one."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return DuplicateError(message)
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return StaleError(message)
    return StoreError(message)


def _apply(db: PgDb, writes: Iterable[Write]) -> None:
    """Run ``writes`` in pipeline mode (one round trip for all of them, not one each), then check that
    every checked write changed its row."""
    checked = []
    with db.conn.pipeline():
        for sql, params in writes:
            cursor = db.execute(sql, params)
            if sql in CHECKED:
                checked.append((sql, cursor))
    for sql, cursor in checked:
        if cursor.rowcount == 0:
            raise StaleError(f"database: a row changed since it was read ({sql.split()[2]})")


class PgStore:
    """A PostgreSQL database shared by several engines (``db.Store``), with ``claim``, ``announce`` and
    ``listen`` for sharing it.

    ``open`` must be awaited before anything else and ``close`` at the end.
    """

    shared = True

    def __init__(self, url: str, *, synchronous: str = "FULL", engine_id: str = "") -> None:
        if psycopg is None:
            raise QueueUnavailableError(
                "database: a postgresql:// task_db needs psycopg: pip install 'mcp-supervisor[postgresql]'"
            )
        self.url = url
        self.name = redact(url)
        self.synchronous = synchronous
        self.engine_id = engine_id
        self._pool: Any = None
        self._limiter = trio.CapacityLimiter(POOL_SIZE)
        self.channel = CHANNEL
        self._listener: threading.Thread | None = None
        self._stop_listening = threading.Event()

    # -- lifecycle --

    def _configure(self, conn: Any) -> None:
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'")
        if self.synchronous != "FULL":
            conn.execute("SET synchronous_commit = off")

    def _connect(self) -> Any:
        conn = psycopg.connect(
            self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, row_factory=_row_factory
        )
        self._configure(conn)
        return conn

    async def open(self) -> None:
        """Connect, bring the schema to this version and open the pool.

        Raises:
            QueueUnavailableError: the server cannot be reached, refuses the login or the schema.
        """

        def start() -> Any:
            try:
                with self._connect() as conn:
                    ensure_postgresql(PgDb(conn), self.name)
                    schema = conn.execute("SELECT current_schema()").fetchone()[0]
                    self.channel = f"{CHANNEL}.{schema}"
                pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=POOL_SIZE,
                    open=False,
                    kwargs={"autocommit": True, "row_factory": _row_factory},
                    configure=self._configure,
                    name="taskqueue",
                )
                pool.open(wait=True, timeout=CONNECT_TIMEOUT)
                return pool
            except psycopg.Error as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise QueueUnavailableError(f"database: cannot use {self.name}: {reason}") from None

        self._pool = await trio.to_thread.run_sync(start)

    async def close(self) -> None:
        """Stop the listener and close the pool (idempotent)."""
        self._stop_listening.set()
        listener, self._listener = self._listener, None
        pool, self._pool = self._pool, None
        with trio.CancelScope(shield=True):
            if listener is not None:
                await trio.to_thread.run_sync(listener.join)
            if pool is not None:
                await trio.to_thread.run_sync(pool.close)

    # -- jobs --

    async def _run(self, job: Callable[[], T]) -> T:
        if self._pool is None:
            raise QueueUnavailableError("the task queue database is closed")
        return await trio.to_thread.run_sync(job, limiter=self._limiter)

    async def read(self, query: Callable[[Db], T]) -> T:
        """Run a read-only ``query(db)`` in one repeatable-read snapshot.

        Raises:
            StoreError: the database refused it or cannot be reached.
        """

        def job() -> T:
            try:
                with self._pool.connection() as conn:
                    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    try:
                        return query(PgDb(conn))
                    finally:
                        conn.execute("COMMIT")
            except psycopg.Error as exc:
                raise _mapped(exc) from None

        return await self._run(job)

    async def write(self, writes: Iterable[Write]) -> None:
        """Run ``writes`` as one transaction and commit it.

        Raises:
            StoreError: nothing was written; ``DuplicateError`` for a taken primary key, ``StaleError`` for
                a checked write that changed no row (or a deadlock with another engine).
        """
        batch = list(writes)
        if not batch:
            return

        def job() -> None:
            try:
                with self._pool.connection() as conn, conn.transaction():
                    _apply(PgDb(conn), batch)
            except psycopg.Error as exc:
                raise _mapped(exc) from None

        await self._run(job)

    async def claim(self, lock: Callable[[Db], T], decide: Callable[[T], list[Write]]) -> T:
        """One transaction in three steps: ``lock(db)`` reads and locks rows (``FOR UPDATE SKIP LOCKED``)
        on a thread; ``decide(found)`` runs on the Trio thread and returns the writes; they are written and
        committed. Returns what ``lock`` found.

        Raises:
            StoreError: as ``write``; nothing was written. Whatever ``decide`` raised (rolled back).

        Cancellation: shielded; a claim that started completes (or rolls back) before ``Cancelled``.
        """
        with trio.CancelScope(shield=True):
            pool = self._pool
            if pool is None:
                raise QueueUnavailableError("the task queue database is closed")
            held: list[Any] = []

            def begin() -> T:  # one hop: a connection, BEGIN and the locking reads (BEGIN pipelined)
                conn = pool.getconn()
                held.append(conn)
                with conn.pipeline():
                    conn.execute("BEGIN")
                    return lock(PgDb(conn))

            def commit(writes: list[Write]) -> None:  # one hop: the writes, COMMIT, the connection back
                try:
                    _apply(PgDb(held[0]), writes)
                    held[0].execute("COMMIT")
                except BaseException:
                    _rollback(held[0])
                    raise
                finally:
                    pool.putconn(held[0])

            def abandon() -> None:
                if held:
                    _rollback(held[0])
                    pool.putconn(held[0])

            try:
                found = await self._run(functools.partial(_guarded, begin))
                writes = decide(found)
            except BaseException:
                await self._run(abandon)
                raise
            await self._run(functools.partial(_guarded, functools.partial(commit, writes)))
            return found
        raise AssertionError("unreachable")  # the shield never swallows what the block raised

    def announce(self, tasks: Iterable[str], workflows: Iterable[str], settings: bool) -> list[Write]:
        """The ``pg_notify`` statements that tell the other engines, at commit, which tasks and workflows
        changed (and whether the pause or the registrations did); payloads of at most ``NOTIFY_LIMIT``."""
        writes: list[Write] = []
        chunk: dict[str, Any] = {"e": self.engine_id, "t": [], "w": [], "s": settings}
        size = len(json.dumps(chunk))
        for key, ids in (("t", tasks), ("w", workflows)):
            for item in ids:
                cost = len(json.dumps(item)) + 1
                if size + cost > NOTIFY_LIMIT:
                    writes.append(self._notify(chunk))
                    chunk = {"e": self.engine_id, "t": [], "w": [], "s": False}
                    size = len(json.dumps(chunk))
                chunk[key].append(item)
                size += cost
        if chunk["t"] or chunk["w"] or chunk["s"]:
            writes.append(self._notify(chunk))
        return writes

    def _notify(self, payload: dict[str, Any]) -> Write:
        return "SELECT pg_notify(?, ?)", (self.channel, json.dumps(payload, separators=(",", ":")))

    # -- the listener --

    async def listen(self, deliver: Callable[[dict[str, Any] | None], None]) -> None:
        """Start the listener thread; returns once ``LISTEN`` is in place, so a snapshot read after this
        misses no change. ``deliver(payload)`` is then called on the Trio thread for each notification of
        another engine (``{"e", "t": task ids, "w": workflow ids, "s": bool}``), and ``deliver(None)``
        after the listener had to reconnect (changes may have been missed: reload everything).

        Raises:
            QueueUnavailableError: the first connection failed.
        """
        token = trio.lowlevel.current_trio_token()
        ready = threading.Event()
        failure: list[BaseException] = []

        def send(payload: dict[str, Any] | None) -> bool:
            try:
                token.run_sync_soon(deliver, payload)
                return True
            except trio.RunFinishedError:
                return False

        def serve() -> None:
            delays = iter(RECONNECT_DELAYS)
            first = True
            while not self._stop_listening.is_set():
                try:
                    with self._connect() as conn:
                        conn.execute(f"LISTEN {_identifier(self.channel)}")
                        delays = iter(RECONNECT_DELAYS)
                        if first:
                            first = False
                            ready.set()
                        elif not send(None):
                            return
                        while not self._stop_listening.is_set():
                            for note in conn.notifies(timeout=LISTEN_POLL):
                                payload = _payload(note.payload)
                                if payload is not None and payload.get("e") != self.engine_id:
                                    if not send(payload):
                                        return
                except psycopg.Error as exc:
                    if first:
                        failure.append(exc)
                        ready.set()
                        return
                    delay = next(delays, RECONNECT_DELAYS[-1])
                    logger.warning("task queue: the listener lost %s (%s); reconnecting", self.name, exc)
                    self._stop_listening.wait(delay)

        self._stop_listening.clear()
        self._listener = threading.Thread(target=serve, name="taskqueue-listen", daemon=True)
        self._listener.start()
        await trio.to_thread.run_sync(ready.wait)
        if failure:
            self._listener = None
            reason = " ".join(str(failure[0]).split())
            raise QueueUnavailableError(f"database: cannot listen on {self.name}: {reason}")


def _guarded(job: Callable[[], T]) -> T:
    try:
        return job()
    except psycopg.Error as exc:
        raise _mapped(exc) from None


def _rollback(conn: Any) -> None:
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
    except psycopg.Error:
        pass  # a broken connection: the pool discards it


def _identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _payload(text: str) -> dict[str, Any] | None:
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
