"""The task queue's database schema: its tables (described once, for both stores), its version, and how a
database is brought to it.

``TABLES`` lists every table's columns with a portable type (``text``, ``int``, ``real``, ``bool``,
``json``, ``serial``); ``ddl(dialect)`` writes the ``CREATE`` statements of SQLite or PostgreSQL from it,
so the two stores can never hold different schemas. JSON is stored as text in both (``rows.py`` encodes
it). ``INDEXES`` are shared; ``SHARED_INDEXES`` serve only the claims and the lease sweep of a shared
(PostgreSQL) store, and are left out of SQLite, whose engine keeps its queue in memory.

Versions (``SCHEMA_VERSION``):

1. the queue of the 20 tools;
2. protocol tasks (MCP tasks run on the same queue): ``origin``, ``client``, ``answers``, ``pending``,
   ``asked``, ``run_again``, ``error_object``, and ``updated_at`` (the last transition) with an index for
   the retention sweep;
3. sharing a database between engines: ``rev`` on tasks and workflows (the revision every checked write
   compares), and on tasks ``claimed_by`` (the engine that started the latest attempt),
   ``lease_expires`` (until when its lease holds, by the database's clock) and ``cancel_requested`` (a
   cancel waiting for the engine that runs the task).

How a database is brought to the version: ``ensure_sqlite`` reads ``PRAGMA user_version`` and applies the
migrations from it (each ``ALTER TABLE ... ADD COLUMN`` step in one transaction); ``ensure_postgresql``
keeps one row per applied version in ``schema_migrations`` and applies the missing ones, each in one
transaction under an advisory lock, so several engines starting at once migrate once. A PostgreSQL
database starts at version 3 (the first version that store had). Both refuse a database of a newer
version, whose rows this code could misread or damage. Everything is idempotent: opening a database of
this version changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

from .db import POSTGRESQL, SQLITE, Db
from .errors import QueueUnavailableError

SCHEMA_VERSION = 3
FIRST_POSTGRESQL_VERSION = 3
MIGRATION_LOCK = 0x6D6370_7471  # "mcp" "tq": the advisory lock key of schema migrations

Column = tuple[str, str, str]
"""(name, portable type, constraints)."""

TABLES: dict[str, list[Column]] = {
    "tasks": [
        ("task_id", "text", "PRIMARY KEY"),
        ("seq", "int", "NOT NULL"),
        ("task_type", "text", "NOT NULL"),
        ("payload", "json", "NOT NULL"),
        ("priority", "real", "NOT NULL"),
        ("order_priority", "real", "NOT NULL"),
        ("order_seq", "int", "NOT NULL"),
        ("tags", "json", "NOT NULL"),
        ("timeout", "real", ""),
        ("max_retries", "int", "NOT NULL"),
        ("backoff_factor", "real", "NOT NULL"),
        ("backoff", "text", "NOT NULL"),
        ("metadata", "json", "NOT NULL"),
        ("status", "text", "NOT NULL"),
        ("submitted_at", "real", "NOT NULL"),
        ("queued_at", "real", "NOT NULL"),
        ("attempts", "int", "NOT NULL"),
        ("busy_retries", "int", "NOT NULL"),
        ("progress", "real", ""),
        ("progress_message", "text", ""),
        ("worker_id", "text", ""),
        ("not_before", "real", ""),
        ("started_at", "real", ""),
        ("first_started_at", "real", ""),
        ("ended_at", "real", ""),
        ("result", "json", ""),
        ("error", "text", ""),
        ("cancel_reason", "text", ""),
        ("retry_of", "text", ""),
        ("retry_count", "int", "NOT NULL"),
        ("workflow_id", "text", ""),
        ("step_id", "text", ""),
        ("origin", "text", "NOT NULL DEFAULT 'queue'"),
        ("client", "json", ""),
        ("answers", "json", ""),
        ("pending", "json", ""),
        ("asked", "json", ""),
        ("run_again", "bool", "NOT NULL DEFAULT {false}"),
        ("updated_at", "real", ""),
        ("error_object", "json", ""),
        ("rev", "int", "NOT NULL DEFAULT 0"),
        ("claimed_by", "text", ""),
        ("cancel_requested", "text", ""),
        ("lease_expires", "real", ""),
    ],
    "attempts": [
        ("id", "serial", ""),
        ("task_id", "text", "NOT NULL"),
        ("attempt", "int", "NOT NULL"),
        ("task_type", "text", "NOT NULL"),
        ("worker_id", "text", ""),
        ("started_at", "real", "NOT NULL"),
        ("ended_at", "real", ""),
        ("outcome", "text", ""),
        ("error", "text", ""),
    ],
    "task_logs": [
        ("id", "serial", ""),
        ("task_id", "text", "NOT NULL"),
        ("at", "real", "NOT NULL"),
        ("level", "text", "NOT NULL"),
        ("message", "text", "NOT NULL"),
    ],
    "workflows": [
        ("workflow_id", "text", "PRIMARY KEY"),
        ("seq", "int", "NOT NULL"),
        ("name", "text", "NOT NULL"),
        ("priority", "real", "NOT NULL"),
        ("tags", "json", "NOT NULL"),
        ("dependencies", "json", "NOT NULL"),
        ("metadata", "json", "NOT NULL"),
        ("status", "text", "NOT NULL"),
        ("submitted_at", "real", "NOT NULL"),
        ("started_at", "real", ""),
        ("ended_at", "real", ""),
        ("error", "text", ""),
        ("cancel_reason", "text", ""),
        ("rev", "int", "NOT NULL DEFAULT 0"),
    ],
    "steps": [
        ("workflow_id", "text", "NOT NULL"),
        ("step_id", "text", "NOT NULL"),
        ("position", "int", "NOT NULL"),
        ("action", "text", "NOT NULL"),
        ("inputs", "json", "NOT NULL"),
        ("depends_on", "json", "NOT NULL"),
        ("timeout", "real", ""),
        ("max_retries", "int", "NOT NULL"),
        ("backoff_factor", "real", "NOT NULL"),
        ("backoff", "text", "NOT NULL"),
        ("status", "text", "NOT NULL"),
        ("task_id", "text", ""),
        ("worker_id", "text", ""),
        ("output", "json", ""),
        ("error", "text", ""),
        ("started_at", "real", ""),
        ("ended_at", "real", ""),
    ],
    "executors": [
        ("worker_id", "text", "PRIMARY KEY"),
        ("capabilities", "json", "NOT NULL"),
        ("max_concurrent_tasks", "int", "NOT NULL"),
        ("resource_limits", "json", "NOT NULL"),
        ("metadata", "json", "NOT NULL"),
        ("registered_at", "real", "NOT NULL"),
    ],
    "settings": [
        ("key", "text", "PRIMARY KEY"),
        ("value", "text", "NOT NULL"),
    ],
}
PRIMARY_KEYS = {"steps": ("workflow_id", "step_id")}
"""Composite primary keys (the others are the column marked ``PRIMARY KEY``)."""

INDEXES = (
    "CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status)",
    "CREATE INDEX IF NOT EXISTS tasks_seq ON tasks (seq)",
    "CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (ended_at)",
    "CREATE INDEX IF NOT EXISTS tasks_origin_ended ON tasks (origin, ended_at)",
    "CREATE INDEX IF NOT EXISTS attempts_task ON attempts (task_id)",
    "CREATE INDEX IF NOT EXISTS attempts_type ON attempts (task_type, outcome)",
    "CREATE INDEX IF NOT EXISTS task_logs_task ON task_logs (task_id)",
    "CREATE INDEX IF NOT EXISTS workflows_ended ON workflows (ended_at)",
)
SHARED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (order_priority DESC, order_seq, task_id) "
    "WHERE status = 'queued'",
    "CREATE INDEX IF NOT EXISTS tasks_leases ON tasks (lease_expires) WHERE status = 'running'",
    "CREATE INDEX IF NOT EXISTS tasks_claimed ON tasks (claimed_by) WHERE status = 'running'",
    "CREATE INDEX IF NOT EXISTS tasks_workflow ON tasks (workflow_id)",
)

_TYPES = {
    SQLITE: {"text": "TEXT", "int": "INTEGER", "real": "REAL", "bool": "INTEGER", "json": "TEXT"},
    POSTGRESQL: {
        "text": "TEXT",
        "int": "BIGINT",
        "real": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
        "json": "TEXT",
    },
}
_SERIAL = {
    SQLITE: "INTEGER PRIMARY KEY AUTOINCREMENT",
    POSTGRESQL: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
}
_FALSE = {SQLITE: "0", POSTGRESQL: "FALSE"}


def column_ddl(column: Column, dialect: str) -> str:
    """One column's definition in ``dialect``."""
    name, kind, constraints = column
    if kind == "serial":
        return f"{name} {_SERIAL[dialect]}"
    rest = constraints.format(false=_FALSE[dialect])
    return f"{name} {_TYPES[dialect][kind]}{' ' + rest if rest else ''}"


def ddl(dialect: str) -> list[str]:
    """The ``CREATE TABLE/INDEX IF NOT EXISTS`` statements of this version in ``dialect``."""
    statements = []
    for table, columns in TABLES.items():
        parts = [column_ddl(column, dialect) for column in columns]
        if table in PRIMARY_KEYS:
            parts.append(f"PRIMARY KEY ({', '.join(PRIMARY_KEYS[table])})")
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(parts)})")
    statements += INDEXES
    if dialect == POSTGRESQL:
        statements += SHARED_INDEXES
    return statements


SQLITE_MIGRATIONS: dict[int, tuple[list[tuple[str, str]], list[str]]] = {
    2: (
        [("tasks", name) for name in ("origin", "client", "answers", "pending", "asked", "run_again")]
        + [("tasks", "updated_at"), ("tasks", "error_object")],
        ["UPDATE tasks SET updated_at = COALESCE(ended_at, started_at, submitted_at)"],
    ),
    3: (
        [("tasks", name) for name in ("rev", "claimed_by", "cancel_requested", "lease_expires")]
        + [("workflows", "rev")],
        [],
    ),
}
"""Version -> (the columns it adds, as ``TABLES`` defines them; then its statements): what brings a SQLite
database from the version before to it. A table that does not exist yet is created whole afterwards."""


def _migrate_sqlite(conn: Any, target: int) -> None:
    """One SQLite migration step, in one transaction."""
    added, statements = SQLITE_MIGRATIONS[target]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, name in added:
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if present and name not in present:
                column = next(c for c in TABLES[table] if c[0] == name)
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column_ddl(column, SQLITE)}")
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


POSTGRESQL_MIGRATIONS: dict[int, tuple[str, list[str]]] = {
    3: ("the tables of version 3", []),  # created by ddl(POSTGRESQL) below
}
"""Version -> (what it does, its statements); a new database runs ``ddl`` and records every version."""


def _refuse_newer(version: int, name: str) -> None:
    if version > SCHEMA_VERSION:
        raise QueueUnavailableError(
            f"database: {name} has schema version {version}, newer than this version understands "
            f"({SCHEMA_VERSION})"
        )


def ensure_sqlite(conn: Any, name: str) -> None:
    """Bring a SQLite database (an ``sqlite3.Connection`` in autocommit mode) to ``SCHEMA_VERSION``.

    Raises:
        QueueUnavailableError: the database has a newer schema version than this code understands.
        sqlite3.Error: the database refused a statement (the caller reports it).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    _refuse_newer(version, name)
    if version > 0:  # an existing database: migrate it step by step (0 is a new, empty one)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            _migrate_sqlite(conn, target)
    for statement in ddl(SQLITE):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def ensure_postgresql(db: Db, name: str) -> None:
    """Bring a PostgreSQL database to ``SCHEMA_VERSION`` (``db`` in autocommit mode; each version is one
    transaction under the advisory lock ``MIGRATION_LOCK``).

    Raises:
        QueueUnavailableError: the database has a newer schema version than this code understands.
        psycopg.Error: the database refused a statement (the caller reports it).
    """
    db.execute("BEGIN")
    try:
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        row = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        version = int(row[0])
        _refuse_newer(version, name)
        if version == 0:
            for statement in ddl(POSTGRESQL):
                db.execute(statement)
            for target, (description, _) in sorted(POSTGRESQL_MIGRATIONS.items()):
                _record(db, target, description)
        else:
            for target in range(version + 1, SCHEMA_VERSION + 1):
                description, statements = POSTGRESQL_MIGRATIONS[target]
                for statement in statements:
                    db.execute(statement)
                _record(db, target, description)
        db.execute("INSERT INTO settings (key, value) VALUES ('paused', 'null') ON CONFLICT (key) DO NOTHING")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _record(db: Db, version: int, description: str) -> None:
    db.execute(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
        (version, description, time.time()),
    )
