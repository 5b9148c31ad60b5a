"""The task-queue engine: one class with one method per tool, on a durable core.

``EngineCore`` (``core.py``) puts together the state, the database, recovery, the committer, the scheduler
and the runners; the four operation classes add the tools. The queue worker process does::

    engine = Engine(db_path, executor)
    set_engine(engine)
    await nursery.start(engine.serve)
"""

from __future__ import annotations

from .executor_ops import ExecutorOperations
from .protocol_ops import ProtocolOperations
from .queue_ops import QueueOperations
from .task_ops import TaskOperations
from .workflow_ops import WorkflowOperations


class Engine(TaskOperations, QueueOperations, ExecutorOperations, WorkflowOperations, ProtocolOperations):
    """A durable priority task queue and workflow engine on one SQLite database, or on a PostgreSQL
    database it may share with other engines (``db_path`` a ``postgresql://`` URL; see ``sharing.py``).

    ``serve`` opens the database, recovers and runs the scheduler; the tool methods (``task_submit`` ...
    ``workflow_result``), the protocol-task operations (``protocol_create`` ... ``protocol_cancel``) and
    ``live_stats``, for the internal ``tasks:*`` entries, may be called once ``serve`` has started. Every tool method validates its
    arguments and raises a ``TaskQueueError`` subclass with one line naming the field; a method that
    changes state returns only after the change is committed. A tool method cancelled while it commits
    still commits (the database wait is shielded) and raises ``Cancelled`` afterwards.

    Constructor: ``Engine(db_path, executor, *, clock=time.time, synchronous="FULL", rng=None,
    task_ttl=3600, task_retention=604800, step_max_bytes=1048576, on_protocol_change=None,
    lease_seconds=30)`` — ``clock`` gives the wall-clock
    times recorded and reported, ``synchronous`` the SQLite sync level (``FULL``: a commit is synced before
    it is acknowledged), ``rng`` the source of retry jitter, ``task_ttl`` and ``task_retention`` the
    seconds protocol tasks and finished queue tasks/workflows are kept after they end (0: forever; see
    ``retention.py``), ``step_max_bytes`` the largest input or output of a workflow step (``sizes.py``),
    ``on_protocol_change`` the hook told of protocol task changes (see ``core.py``), ``lease_seconds``
    how long a task this engine started stays its own without a renewal (a shared database: ``leases.py``).
    """


__all__ = ["Engine"]
