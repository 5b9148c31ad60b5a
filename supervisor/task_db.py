"""Which SQLite database the task queue of this supervisor opens.

One database admits one task queue (the store's lock). The commonest way to meet that limit is not a
mistake: an HTTP server runs under systemd and a desktop client starts a ``--stdio`` instance of the same
user. So by default each kind of instance has its own database (``tasks.db`` for HTTP, ``tasks-stdio.db``
for stdio, in the state directory), and when the default is held by another live supervisor the next free
numbered sibling (``tasks-2.db``, ...) is taken, with one line saying so. A database named by ``task_db``
is never replaced by another: if it is in use the start fails in one line.

The check is a probe at start; the queue worker still takes the lock itself, so a race between two
starting supervisors ends with one of them failing to open the queue, not with a shared database.
A ``postgresql://`` URL is taken as it is: that database is meant to be shared.
"""

from __future__ import annotations

from pathlib import Path

from shared.dburl import is_url
from shared.errors import ConfigError
from shared.statedir import lock_holder, state_directory

HTTP_DB_NAME = "tasks.db"
STDIO_DB_NAME = "tasks-stdio.db"
MAX_SIBLINGS = 20
"""How many numbered siblings of a default database are tried before giving up."""


def choose_task_db(configured: str | None, *, stdio: bool) -> tuple[str, str | None]:
    """``(database, note)``: the database to open (a path, or the URL as given), and one line to log when
    it is not the default one.

    Raises:
        ConfigError: ``configured`` (the ``task_db`` setting) is in use by another task queue, or every
            default sibling is.
    """
    if configured is not None:
        if is_url(configured):
            return configured, None
        holder = lock_holder(Path(configured))
        if holder is not None:
            raise ConfigError(
                f"the task queue at {configured} is in use by {_who(holder)}; "
                "use --task-db or --no-task-queue"
            )
        return configured, None
    default = state_directory() / (STDIO_DB_NAME if stdio else HTTP_DB_NAME)
    holder = lock_holder(default)
    if holder is None:
        return str(default), None
    for number in range(2, MAX_SIBLINGS + 2):
        sibling = default.with_name(f"{default.stem}-{number}{default.suffix}")
        if lock_holder(sibling) is None:
            note = (
                f"the task queue at {default} is in use by {_who(holder)}; this supervisor uses "
                f"{sibling} (set task_db to choose)"
            )
            return str(sibling), note
    raise ConfigError(
        f"the task queue at {default} and its {MAX_SIBLINGS} numbered siblings are in use; "
        "use --task-db or --no-task-queue"
    )


def _who(pid: int) -> str:
    return f"pid {pid}" if pid else "another process"
