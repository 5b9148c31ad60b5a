"""The durable task queue and workflow engine of the ``trio-queue`` worker process.

A task is a deferred tool call: it waits in a priority queue in SQLite, runs on a worker process through
the router with a timeout and retries, and ends in exactly one of completed, failed or cancelled — even
across crashes. A workflow is a DAG of such calls whose steps can use earlier steps' outputs. See
docs/taskqueue.md for the model and the tools.

The queue worker does::

    engine = Engine(db_path, executor)
    set_engine(engine)
    await nursery.start(engine.serve)
    import trio_worker.taskqueue.tools  # registers the 20 tools
"""

from .current import get_engine, set_engine
from .engine import Engine
from .executor import Executor, ToolCallRefused

__all__ = ["Engine", "Executor", "ToolCallRefused", "get_engine", "set_engine"]
