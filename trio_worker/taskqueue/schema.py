"""The task queue's database schema: its tables, its version, and how a database is brought to it.

``ensure_schema`` runs once, on the database thread, when the store opens: it refuses a database written
by a newer version of this schema (whose rows this code could misread or damage), migrates an older one
and creates what is missing. The statements are idempotent (``IF NOT EXISTS``), so opening an existing
database of this version changes nothing.

Versions: 1 is the queue of the 20 tools; 2 adds the columns of protocol tasks (MCP tasks run on the same
queue: ``origin``, ``client``, ``answers``, ``pending``, ``asked``, ``run_again``, ``error_object``) and
``updated_at`` (the last transition), with an index for the retention sweep. The migration from 1 is
``ALTER TABLE ... ADD COLUMN`` in one transaction: the old rows become queue tasks (``origin = 'queue'``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .errors import QueueUnavailableError

SCHEMA_VERSION = 2
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
    step_id TEXT,
    origin TEXT NOT NULL DEFAULT 'queue',
    client TEXT,
    answers TEXT,
    pending TEXT,
    asked TEXT,
    run_again INTEGER NOT NULL DEFAULT 0,
    updated_at REAL,
    error_object TEXT
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_seq ON tasks (seq);
CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (ended_at);
CREATE INDEX IF NOT EXISTS tasks_origin_ended ON tasks (origin, ended_at);
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
CREATE INDEX IF NOT EXISTS workflows_ended ON workflows (ended_at);
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


def ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables of ``SCHEMA_VERSION`` if they are missing and record the version.

    Raises:
        QueueUnavailableError: the database has a newer schema version than this code understands.
        sqlite3.Error: the database refused a statement (the caller reports it).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise QueueUnavailableError(
            f"database: {path} has schema version {version}, newer than this "
            f"version understands ({SCHEMA_VERSION})"
        )
    if version == 1:
        _migrate_1_to_2(conn)
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


MIGRATION_1_TO_2 = (
    "ALTER TABLE tasks ADD COLUMN origin TEXT NOT NULL DEFAULT 'queue'",
    "ALTER TABLE tasks ADD COLUMN client TEXT",
    "ALTER TABLE tasks ADD COLUMN answers TEXT",
    "ALTER TABLE tasks ADD COLUMN pending TEXT",
    "ALTER TABLE tasks ADD COLUMN asked TEXT",
    "ALTER TABLE tasks ADD COLUMN run_again INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE tasks ADD COLUMN updated_at REAL",
    "ALTER TABLE tasks ADD COLUMN error_object TEXT",
    "UPDATE tasks SET updated_at = COALESCE(ended_at, started_at, submitted_at)",
)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Add the columns of protocol tasks to a version-1 database, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in MIGRATION_1_TO_2:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
