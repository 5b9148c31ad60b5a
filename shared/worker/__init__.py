"""The worker process's machinery, imported by ``asyncio_worker`` and ``trio_worker`` only (tool code
imports ``shared``, which loads none of this).

``process`` is the process from its command line to its exit code (``run_worker``); ``core`` turns the
router's frames into calls and answers over the runtime's ``Loop`` (``WorkerCore``); ``host`` loads the
tools and builds every frame about a call (``ToolHost``); ``builtin_tools`` are the tools served when no
module is configured. ``__all__`` holds what the two worker packages import; the protocols a runtime
implements (``Loop``, ``Waiter``, ``Cancellable``) are in ``core``.
"""

from .core import ProgressCallback, WorkerCore
from .host import PreparedCall, ToolHost
from .process import run_worker

__all__ = ["PreparedCall", "ProgressCallback", "ToolHost", "WorkerCore", "run_worker"]
