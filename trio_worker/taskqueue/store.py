"""The task queue's SQLite database, run on one dedicated thread so the Trio loop never waits on disk.

One ``Store`` owns one thread and one ``sqlite3`` connection, opened on that thread and never used from
another. The Trio side hands it jobs (``write``, ``read``) and waits on a ``trio.Event`` the thread sets
through the Trio token, so the event loop keeps running while SQLite writes and syncs.

Durability: WAL journal, ``synchronous=FULL`` by default — each commit is synced to the WAL file before
``write`` returns, so a state change the engine acknowledged survives a kill -9 *and* a power loss.
(``NORMAL`` survives a process crash but may lose the last commits on power loss; it is accepted for
tests and for users who prefer speed.) A ``write`` is one transaction: all of its statements or none.

Exclusivity: the store holds an ``flock`` on ``<db>.lock`` while it is open, so two task queues can never
run on one database (which would run tasks twice). The kernel drops the lock when the process dies.

Cancellation: a database job that has started always finishes; a caller cancelled while waiting for it
gets ``trio.Cancelled`` after the job completed (the wait is shielded), so an acknowledged write and the
caller's view of it cannot disagree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import trio

from .errors import QueueUnavailableError
from .records import Attempt, LogLine, Registration, StepRecord, TaskRecord, WorkflowRecord

logger = logging.getLogger("mcp_supervisor.taskqueue")

T = TypeVar("T")
Write = tuple[str, tuple[Any, ...]]
"""One SQL statement and its parameters; ``Store.write`` runs a batch of them as one transaction."""
Synchronous = Literal["NORMAL", "FULL"]

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    task_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority REAL NOT NULL,
    order_priority REAL NOT NULL,
    order_seq INTEGER NOT NULL,
    tags TEXT NOT NULL,
    timeout REAL,
    max_retries INTEGER NOT NULL,
    backoff_factor REAL NOT NULL,
    backoff TEXT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    busy_retries INTEGER NOT NULL,
    progress REAL,
    progress_message TEXT,
    worker_id TEXT,
    not_before REAL,
    started_at REAL,
    first_started_at REAL,
    ended_at REAL,
    result TEXT,
    error TEXT,
    cancel_reason TEXT,
    retry_of TEXT,
    retry_count INTEGER NOT NULL,
    workflow_id TEXT,
    step_id TEXT
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_seq ON tasks (seq);
CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (ended_at);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    task_type TEXT NOT NULL,
    worker_id TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_task ON attempts (task_id);
CREATE INDEX IF NOT EXISTS attempts_type ON attempts (task_type, outcome);
CREATE TABLE IF NOT EXISTS task_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    at REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS task_logs_task ON task_logs (task_id);
CREATE TABLE IF NOT EXISTS workflows (
    workflow_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    priority REAL NOT NULL,
    tags TEXT NOT NULL,
    dependencies TEXT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    error TEXT,
    cancel_reason TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    workflow_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    action TEXT NOT NULL,
    inputs TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    timeout REAL,
    max_retries INTEGER NOT NULL,
    backoff_factor REAL NOT NULL,
    backoff TEXT NOT NULL,
    status TEXT NOT NULL,
    task_id TEXT,
    worker_id TEXT,
    output TEXT,
    error TEXT,
    started_at REAL,
    ended_at REAL,
    PRIMARY KEY (workflow_id, step_id)
);
CREATE TABLE IF NOT EXISTS executors (
    worker_id TEXT PRIMARY KEY,
    capabilities TEXT NOT NULL,
    max_concurrent_tasks INTEGER NOT NULL,
    resource_limits TEXT NOT NULL,
    metadata TEXT NOT NULL,
    registered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_JSON_FIELDS = {
    "payload",
    "tags",
    "metadata",
    "result",
    "dependencies",
    "inputs",
    "depends_on",
    "output",
    "capabilities",
    "resource_limits",
}


def _columns(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _to_row(record: Any) -> tuple[Any, ...]:
    values = []
    for name in _columns(type(record)):
        value = getattr(record, name)
        if name in _JSON_FIELDS:
            value = None if value is None and name in ("result", "output") else json.dumps(value)
        values.append(value)
    return tuple(values)


def _from_row(cls: type[T], row: sqlite3.Row) -> T:
    kwargs = {}
    for name in _columns(cls):
        value = row[name]
        if name in _JSON_FIELDS and value is not None:
            value = json.loads(value)
        kwargs[name] = value
    return cls(**kwargs)


def _upsert(table: str, cls: type[Any], keys: Sequence[str]) -> str:
    columns = _columns(cls)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


_PUT_TASK = _upsert("tasks", TaskRecord, ["task_id"])
_TASK_COLUMNS = _columns(TaskRecord)
_INSERT_TASK = (
    f"INSERT INTO tasks ({', '.join(_TASK_COLUMNS)}) VALUES ({', '.join('?' * len(_TASK_COLUMNS))})"
)
_PUT_WORKFLOW = _upsert("workflows", WorkflowRecord, ["workflow_id"])
_PUT_STEP = _upsert("steps", StepRecord, ["workflow_id", "step_id"])
_PUT_EXECUTOR = _upsert("executors", Registration, ["worker_id"])
_ATTEMPT_COLUMNS = _columns(Attempt)


# -- writes (pure: they build statements, Store.write runs them) -------------------------------------


def put_task(task: TaskRecord) -> Write:
    """Insert or replace a task's whole row."""
    return _PUT_TASK, _to_row(task)


def insert_task(task: TaskRecord) -> Write:
    """Insert a new task's row; fails with ``sqlite3.IntegrityError`` if its id is taken."""
    return _INSERT_TASK, _to_row(task)


def put_workflow(workflow: WorkflowRecord) -> Write:
    return _PUT_WORKFLOW, _to_row(workflow)


def put_step(step: StepRecord) -> Write:
    return _PUT_STEP, _to_row(step)


def put_registration(registration: Registration) -> Write:
    return _PUT_EXECUTOR, _to_row(registration)


def delete_registration(worker_id: str) -> Write:
    return "DELETE FROM executors WHERE worker_id = ?", (worker_id,)


def add_attempt(attempt: Attempt) -> Write:
    return (
        f"INSERT INTO attempts ({', '.join(_ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' * len(_ATTEMPT_COLUMNS))})",
        _to_row(attempt),
    )


def add_log(line: LogLine) -> Write:
    return (
        "INSERT INTO task_logs (task_id, at, level, message) VALUES (?, ?, ?, ?)",
        (line.task_id, line.at, line.level, line.message),
    )


def put_progress(task_id: str, attempt: int, progress: float | None, message: str | None) -> Write:
    """The progress of a running attempt; a no-op once that attempt has ended."""
    return (
        "UPDATE tasks SET progress = ?, progress_message = ? "
        "WHERE task_id = ? AND status = 'running' AND attempts = ?",
        (progress, message, task_id, attempt),
    )


def put_setting(key: str, value: Any) -> Write:
    return (
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def delete_tasks(task_ids: Sequence[str]) -> list[Write]:
    """Remove tasks with their attempts and logs."""
    writes: list[Write] = []
    for task_id in task_ids:
        writes.append(("DELETE FROM tasks WHERE task_id = ?", (task_id,)))
        writes.append(("DELETE FROM attempts WHERE task_id = ?", (task_id,)))
        writes.append(("DELETE FROM task_logs WHERE task_id = ?", (task_id,)))
    return writes


# -- reads (run on the database thread) -------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Snapshot:
    """What the engine loads at start: everything unfinished, and what it needs to schedule."""

    tasks: list[TaskRecord]
    workflows: list[WorkflowRecord]
    steps: list[StepRecord]
    registrations: list[Registration]
    settings: dict[str, Any]
    next_seq: int
    durations: dict[str, list[float]]
    open_attempts: dict[str, Attempt]


@dataclasses.dataclass(slots=True)
class TaskQuery:
    """Filters of ``task_list``; ``None`` means no filter."""

    statuses: list[str] | None = None
    worker_id: str | None = None
    tags: list[str] | None = None
    priority_min: float | None = None
    limit: int = 100
    offset: int = 0


@dataclasses.dataclass(slots=True)
class WorkflowQuery:
    statuses: list[str] | None = None
    peer: str | None = None
    tags: list[str] | None = None
    limit: int = 50
    offset: int = 0


DURATION_SAMPLES = 50
"""How many of a task type's latest successful runs its average execution time is taken over."""


def load_snapshot(conn: sqlite3.Connection) -> Snapshot:
    tasks = [
        _from_row(TaskRecord, row)
        for row in conn.execute("SELECT * FROM tasks WHERE status IN ('queued', 'running') ORDER BY seq")
    ]
    workflows = [
        _from_row(WorkflowRecord, row)
        for row in conn.execute("SELECT * FROM workflows WHERE status IN ('pending', 'running') ORDER BY seq")
    ]
    steps = [
        _from_row(StepRecord, row)
        for row in conn.execute(
            "SELECT s.* FROM steps s JOIN workflows w USING (workflow_id) "
            "WHERE w.status IN ('pending', 'running') ORDER BY s.workflow_id, s.position"
        )
    ]
    registrations = [_from_row(Registration, row) for row in conn.execute("SELECT * FROM executors")]
    settings = {row["key"]: json.loads(row["value"]) for row in conn.execute("SELECT * FROM settings")}
    next_seq = 1 + max(
        conn.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks").fetchone()[0],
        conn.execute("SELECT COALESCE(MAX(order_seq), 0) FROM tasks").fetchone()[0],
        conn.execute("SELECT COALESCE(MAX(seq), 0) FROM workflows").fetchone()[0],
    )
    durations: dict[str, list[float]] = {}
    for row in conn.execute(
        "SELECT task_type, ended_at - started_at AS d FROM ("
        " SELECT task_type, started_at, ended_at, ROW_NUMBER() OVER ("
        "  PARTITION BY task_type ORDER BY ended_at DESC) AS n"
        " FROM attempts WHERE outcome = 'completed') WHERE n <= ? ORDER BY ended_at",
        (DURATION_SAMPLES,),
    ):
        durations.setdefault(row["task_type"], []).append(max(0.0, row["d"]))
    open_attempts = {
        row["task_id"]: _from_row(Attempt, row)
        for row in conn.execute("SELECT * FROM attempts WHERE ended_at IS NULL")
    }
    return Snapshot(tasks, workflows, steps, registrations, settings, next_seq, durations, open_attempts)


def close_open_attempts(task_id: str, ended_at: float, outcome: str, error: str | None) -> Write:
    """End the attempt rows of a task that were still open (a run interrupted by a stop or crash)."""
    return (
        "UPDATE attempts SET ended_at = ?, outcome = ?, error = ? WHERE task_id = ? AND ended_at IS NULL",
        (ended_at, outcome, error, task_id),
    )


def finish_attempt(task_id: str, attempt: int, ended_at: float, outcome: str, error: str | None) -> Write:
    return (
        "UPDATE attempts SET ended_at = ?, outcome = ?, error = ? "
        "WHERE task_id = ? AND attempt = ? AND ended_at IS NULL",
        (ended_at, outcome, error, task_id, attempt),
    )


def get_task(conn: sqlite3.Connection, task_id: str) -> TaskRecord | None:
    row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else _from_row(TaskRecord, row)


def task_exists(conn: sqlite3.Connection, task_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone() is not None


def workflow_exists(conn: sqlite3.Connection, workflow_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM workflows WHERE workflow_id = ?", (workflow_id,)).fetchone() is not None
    )


def _task_filters(query: TaskQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.statuses:
        clauses.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        params.extend(query.statuses)
    if query.worker_id is not None:
        clauses.append("worker_id = ?")
        params.append(query.worker_id)
    if query.priority_min is not None:
        clauses.append("priority >= ?")
        params.append(query.priority_min)
    if query.tags:
        clauses.append(
            "NOT EXISTS (SELECT 1 FROM json_each(?) AS wanted "
            "WHERE wanted.value NOT IN (SELECT value FROM json_each(tasks.tags)))"
        )
        params.append(json.dumps(query.tags))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_tasks(conn: sqlite3.Connection, query: TaskQuery) -> tuple[list[TaskRecord], int]:
    """Tasks matching ``query``, newest first, and how many match in all."""
    where, params = _task_filters(query)
    total = conn.execute(f"SELECT COUNT(*) FROM tasks{where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM tasks{where} ORDER BY seq DESC LIMIT ? OFFSET ?", [*params, query.limit, query.offset]
    )
    return [_from_row(TaskRecord, row) for row in rows], int(total)


def matching_task_ids(conn: sqlite3.Connection, statuses: Sequence[str]) -> list[str]:
    rows = conn.execute(
        f"SELECT task_id FROM tasks WHERE status IN ({', '.join('?' * len(statuses))}) ORDER BY seq",
        list(statuses),
    )
    return [row[0] for row in rows]


def attempt_counts(conn: sqlite3.Connection, task_ids: Sequence[str]) -> dict[str, int]:
    """How many attempts each of these tasks had (tasks that were deleted are left out)."""
    if not task_ids:
        return {}
    rows = conn.execute(
        f"SELECT task_id, attempts FROM tasks WHERE task_id IN ({', '.join('?' * len(task_ids))})",
        list(task_ids),
    )
    return {row[0]: int(row[1]) for row in rows}


def task_logs(conn: sqlite3.Connection, task_id: str, limit: int = 500) -> list[LogLine]:
    """The latest ``limit`` log lines of a task, oldest first."""
    rows = conn.execute(
        "SELECT * FROM (SELECT * FROM task_logs WHERE task_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
        (task_id, limit),
    )
    return [LogLine(row["task_id"], row["at"], row["level"], row["message"]) for row in rows]


def task_attempts(conn: sqlite3.Connection, task_id: str) -> list[Attempt]:
    rows = conn.execute("SELECT * FROM attempts WHERE task_id = ? ORDER BY id", (task_id,))
    return [_from_row(Attempt, row) for row in rows]


def status_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {row[0]: row[1] for row in conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")}


def averages(conn: sqlite3.Connection, since: float | None = None) -> dict[str, Any]:
    """Average wait (submission to first start) and execution time (successful runs), with sample sizes."""
    wait = conn.execute(
        "SELECT AVG(first_started_at - submitted_at), COUNT(*) FROM tasks "
        "WHERE first_started_at IS NOT NULL AND (? IS NULL OR first_started_at >= ?)",
        (since, since),
    ).fetchone()
    execution = conn.execute(
        "SELECT AVG(ended_at - started_at), COUNT(*) FROM attempts "
        "WHERE outcome = 'completed' AND (? IS NULL OR ended_at >= ?)",
        (since, since),
    ).fetchone()
    return {
        "average_wait_time": wait[0],
        "wait_samples": wait[1],
        "average_execution_time": execution[0],
        "execution_samples": execution[1],
    }


def finished_since(conn: sqlite3.Connection, since: float) -> dict[str, int]:
    """How many tasks reached each terminal state at or after ``since``."""
    rows = conn.execute(
        "SELECT status, COUNT(*) FROM tasks WHERE ended_at >= ? "
        "AND status IN ('completed', 'failed', 'cancelled') GROUP BY status",
        (since,),
    )
    return {row[0]: row[1] for row in rows}


def first_activity(conn: sqlite3.Connection) -> float | None:
    """The earliest submission still in the database (throughput windows do not reach before it)."""
    value = conn.execute(
        "SELECT MIN(t) FROM (SELECT MIN(submitted_at) AS t FROM tasks "
        "UNION ALL SELECT MIN(started_at) FROM attempts)"
    ).fetchone()[0]
    return None if value is None else float(value)


def hourly(conn: sqlite3.Connection, since: float) -> list[dict[str, Any]]:
    """Per hour since ``since`` (UTC hours, oldest first): finished tasks per status and average times."""
    rows = conn.execute(
        "SELECT CAST(ended_at / 3600 AS INTEGER) AS hour, "
        "SUM(status = 'completed') AS completed, SUM(status = 'failed') AS failed, "
        "SUM(status = 'cancelled') AS cancelled, "
        "AVG(CASE WHEN first_started_at IS NOT NULL THEN first_started_at - submitted_at END) AS wait, "
        "AVG(CASE WHEN status = 'completed' THEN ended_at - started_at END) AS execution "
        "FROM tasks WHERE ended_at >= ? GROUP BY hour ORDER BY hour",
        (since,),
    )
    return [dict(row) for row in rows]


def by_task_type(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT task_type, COUNT(*) AS total, SUM(status = 'completed') AS completed, "
        "SUM(status = 'failed') AS failed, SUM(status = 'cancelled') AS cancelled, "
        "AVG(CASE WHEN status = 'completed' THEN ended_at - started_at END) AS execution "
        "FROM tasks GROUP BY task_type ORDER BY task_type"
    )
    return [dict(row) for row in rows]


def worker_totals(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Per executor: finished attempts by outcome and the average successful execution time."""
    rows = conn.execute(
        "SELECT worker_id, SUM(outcome = 'completed') AS completed, "
        "SUM(outcome IN ('failed', 'interrupted')) AS failed, SUM(outcome = 'cancelled') AS cancelled, "
        "AVG(CASE WHEN outcome = 'completed' THEN ended_at - started_at END) AS execution "
        "FROM attempts WHERE worker_id IS NOT NULL AND ended_at IS NOT NULL GROUP BY worker_id"
    )
    return {row["worker_id"]: dict(row) for row in rows}


def get_workflow(
    conn: sqlite3.Connection, workflow_id: str
) -> tuple[WorkflowRecord, list[StepRecord]] | None:
    row = conn.execute("SELECT * FROM workflows WHERE workflow_id = ?", (workflow_id,)).fetchone()
    if row is None:
        return None
    steps = conn.execute("SELECT * FROM steps WHERE workflow_id = ? ORDER BY position", (workflow_id,))
    return _from_row(WorkflowRecord, row), [_from_row(StepRecord, s) for s in steps]


def workflow_statuses(conn: sqlite3.Connection, workflow_ids: Iterable[str]) -> dict[str, str]:
    ids = list(workflow_ids)
    if not ids:
        return {}
    rows = conn.execute(
        f"SELECT workflow_id, status FROM workflows WHERE workflow_id IN ({', '.join('?' * len(ids))})", ids
    )
    return {row[0]: row[1] for row in rows}


def list_workflows(
    conn: sqlite3.Connection, query: WorkflowQuery
) -> tuple[list[tuple[WorkflowRecord, list[StepRecord]]], int]:
    """Workflows matching ``query``, newest first, each with its steps, and how many match in all."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.statuses:
        clauses.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        params.extend(query.statuses)
    if query.peer is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM steps s WHERE s.workflow_id = workflows.workflow_id AND s.worker_id = ?)"
        )
        params.append(query.peer)
    if query.tags:
        clauses.append(
            "NOT EXISTS (SELECT 1 FROM json_each(?) AS wanted "
            "WHERE wanted.value NOT IN (SELECT value FROM json_each(workflows.tags)))"
        )
        params.append(json.dumps(query.tags))
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    total = conn.execute(f"SELECT COUNT(*) FROM workflows{where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM workflows{where} ORDER BY seq DESC LIMIT ? OFFSET ?",
        [*params, query.limit, query.offset],
    ).fetchall()
    result = []
    for row in rows:
        workflow = _from_row(WorkflowRecord, row)
        steps = conn.execute(
            "SELECT * FROM steps WHERE workflow_id = ? ORDER BY position", (workflow.workflow_id,)
        )
        result.append((workflow, [_from_row(StepRecord, s) for s in steps]))
    return result, int(total)


# -- the store -------------------------------------------------------------------------------------


class Store:
    """The database of one engine: a dedicated thread with its own connection.

    ``open`` must be awaited (on the Trio thread) before anything else and ``close`` at the end; every
    other coroutine runs one job on the database thread and returns its result.
    """

    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the database thread
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
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
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
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
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
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise QueueUnavailableError(
                    f"database: {self.path} has schema version {version}, newer than this "
                    f"version understands ({SCHEMA_VERSION})"
                )
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
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

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``query(connection)`` on the database thread."""

        def job() -> T:
            assert self._conn is not None
            return query(self._conn)

        return await self._run(job)

    async def write(self, writes: Iterable[Write]) -> None:
        """Run ``writes`` as one transaction and commit it (synced to disk as ``synchronous`` says).

        Raises:
            sqlite3.Error: nothing was written (the transaction was rolled back).
        """
        batch = list(writes)
        if not batch:
            return
        await self._run(lambda: self._apply(batch))

    def _apply(self, writes: list[Write]) -> None:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in writes:
                conn.execute(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
