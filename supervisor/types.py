"""What the HTTP endpoints read of the running ``Supervisor`` (``app.py``), as Protocols.

``/readyz``, ``/status`` (and ``ctl status``) and ``/metrics`` report the supervisor's state; instead of
taking the whole ``Supervisor``, ``front.py``, ``status.py`` and ``metrics.py`` take a ``SupervisorView``,
which names exactly the attributes they read. ``Supervisor`` satisfies it (mypy checks it where
``app.py`` passes itself), and a test can pass anything that has these attributes.

Every member is read-only: nothing here changes the supervisor (refreshing ``queue_status`` only asks
the queue again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # only for the annotations: fastpath.py imports metrics.py, which imports this
    from .auth.middleware import AuthStats
    from .connections import ConnectionTable
    from .fastpath import FastPathStats
    from .process import WorkerProcess
    from .queue_status import QueueStatus
    from .router import Router


class WorkerTable(Protocol):
    """What is read of the arbiter: its workers."""

    @property
    def workers(self) -> Mapping[str, WorkerProcess]:
        """The current worker of each slot, by worker id."""
        ...

    def all_workers(self) -> list[WorkerProcess]:
        """Current, candidate and retiring workers."""
        ...

    def restarts_total(self, worker: WorkerProcess) -> int:
        """Restarts of ``worker``'s slot in the supervisor's life (never goes down)."""
        ...


class ProcessFigures(Protocol):
    """What is read of the process sampler: its cached psutil figures."""

    @property
    def latest(self) -> Mapping[int, Mapping[str, Any]]:
        """``{pid: {cpu_percent, rss_bytes, open_fds, threads, cpu_affinity}}``, at most a second old."""
        ...


class SupervisorView(Protocol):
    """What ``/readyz``, ``/status`` and ``/metrics`` read of the supervisor."""

    @property
    def router(self) -> Router: ...

    @property
    def arbiter(self) -> WorkerTable: ...

    @property
    def sampler(self) -> ProcessFigures: ...

    @property
    def pid(self) -> int:
        """The supervisor's own process id."""
        ...

    @property
    def started_at(self) -> float:
        """When it started, on the monotonic clock."""
        ...

    @property
    def stopping(self) -> bool:
        """True once a stop was requested: it is no longer ready."""
        ...

    @property
    def fast_path_stats(self) -> FastPathStats:
        """How the POSTs to ``/mcp`` were served."""
        ...

    @property
    def auth_stats(self) -> AuthStats:
        """Requests the authorization layer refused."""
        ...

    @property
    def connections(self) -> ConnectionTable:
        """The front's open connections and what its deadlines and caps did."""
        ...

    @property
    def auth_warning(self) -> str | None:
        """Why the server is exposed (a non-loopback address without authorization), if it is."""
        ...

    @property
    def queue_status(self) -> QueueStatus | None:
        """What the task queue last said about itself; ``None`` without a task queue. Refreshing it is
        the one thing the endpoints do to it (``QueueStatus.refresh``)."""
        ...
