"""The seam between the engine and its database: what a store promises, whichever engine holds the data.

Two stores implement it: ``store.SqliteStore`` (a file, one engine, its own thread) and
``pgstore.PgStore`` (a PostgreSQL server shared by several engines). ``open_store`` picks one from the
``task_db`` setting: a ``postgresql://`` (or ``postgres://``) URL is PostgreSQL, anything else a path.

Both run the same statements: the writes of ``rows.py`` and the reads of ``queries.py``, written with
``?`` placeholders, handed a ``Db`` (a connection with ``execute`` and its ``dialect``). Errors of the
driver never leave a store; they become::

    StoreError         the database refused the transaction (nothing of it was written)
    ├── DuplicateError a new row's key is taken (a plain INSERT of a task id that exists)
    └── StaleError     a checked write (``rows.CHECKED``) matched no row: another engine changed the row
                       since it was read; nothing was written, the caller re-reads and decides again
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from shared import dburl

T = TypeVar("T")

Write = tuple[str, tuple[Any, ...]]
"""One SQL statement and its parameters; a store runs a batch of them as one transaction."""

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class StoreError(Exception):
    """The database refused a transaction or a read; nothing of the transaction was written."""


class DuplicateError(StoreError):
    """A new row's primary key is taken."""


class StaleError(StoreError):
    """A checked write found its row changed by someone else since it was read (nothing was written)."""


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection as the reads and writes see it: rows answer ``row["name"]`` and ``row[0]``."""

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        ...

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...


class Store(Protocol):
    """A task queue's database, opened by ``open`` and closed by ``close``.

    ``read`` and ``write`` run on a thread of the store's, never on the Trio thread; a job that has
    started always finishes, and a caller cancelled meanwhile sees ``trio.Cancelled`` once it did.
    """

    shared: bool
    """True when several engines may work on this database at once (PostgreSQL)."""
    name: str
    """What to call the database in messages: its path, or its URL without the password."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self, query: Callable[[Db], T]) -> T: ...

    async def write(self, writes: Iterable[Write]) -> None: ...


class SharedStore(Store, Protocol):
    """A store several engines share (``pgstore.PgStore``): claims, announcements and a listener."""

    engine_id: str

    async def claim(self, lock: Callable[[Db], T], decide: Callable[[T], list[Write]]) -> T: ...

    def announce(self, tasks: Iterable[str], workflows: Iterable[str], settings: bool) -> list[Write]: ...

    async def listen(self, deliver: Callable[[dict[str, Any] | None], None]) -> None: ...


def is_url(target: str | Path) -> bool:
    """True when ``target`` names a PostgreSQL database rather than a file."""
    return isinstance(target, str) and dburl.is_url(target)


def open_store(target: str | Path, *, synchronous: str = "FULL", engine_id: str = "") -> Store:
    """The store of ``target``: a PostgreSQL URL or a SQLite path (not opened yet).

    Raises:
        QueueUnavailableError: a URL, and the PostgreSQL driver (psycopg) is not installed.
    """
    if is_url(target):
        from .pgstore import PgStore

        return PgStore(str(target), synchronous=synchronous, engine_id=engine_id)
    from .store import SqliteStore

    return SqliteStore(Path(target), synchronous=synchronous)  # type: ignore[arg-type]
