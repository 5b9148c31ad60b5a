"""The Trio worker process: runs the Trio tools of the configured modules (``python -m trio_worker``)."""

from .worker import TrioWorker, serve

__all__ = ["TrioWorker", "serve"]
