"""The asyncio worker process: runs the asyncio tools of the configured modules (``python -m asyncio_worker``)."""

from .worker import AsyncioWorker, serve

__all__ = ["AsyncioWorker", "serve"]
