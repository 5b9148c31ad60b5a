"""The errors the task queue raises on purpose.

Every message is one line and starts with the field it is about (``task_id: no task 'x'``), so the worker
can hand it to the client unchanged as an ``isError`` result (``tool 'task_status' failed: NotFoundError:
task_id: no task 'x'``).

::

    TaskQueueError
    ├── NotFoundError          an id names no task, workflow or executor
    ├── InvalidRequestError    a parameter is out of range, malformed or names an unknown task type
    ├── ConflictError          the request is valid but the object's state does not allow it
    └── QueueUnavailableError  the engine is not running here, or its database is held by another process
"""

from __future__ import annotations


class TaskQueueError(Exception):
    """Base of every error the task queue raises on purpose; the message is one line naming the field."""


class NotFoundError(TaskQueueError):
    """An id names no task, workflow or registered executor."""


class InvalidRequestError(TaskQueueError):
    """A parameter is invalid: out of range, malformed, an unknown task type, or a payload its schema refuses."""


class ConflictError(TaskQueueError):
    """The request is well formed but the state of its object does not allow it (for example retrying a
    task that is still running, or an id that is taken)."""


class QueueUnavailableError(TaskQueueError):
    """The task queue is not running in this process, or its database is in use by another process."""
