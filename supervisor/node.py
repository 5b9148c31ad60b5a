"""``Node``: a host that only runs workers for a remote front, from start to exit code (docs/scaling.md).

The same arbiter as a supervisor's (restart with backoff and flapping, heartbeats, pinning, resource
limits, containment, spares, memory recycling, rolling reload) over a ``NodeRouter`` instead of the
supervisor's router: no front, no task queue, no control socket. One loop; signals only queue an action:
SIGTERM/SIGINT stop (the workers are drained at the front, their calls get ``shutdown_grace``), SIGHUP
re-reads the configuration and replaces the workers without failing a call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from shared.errors import ConfigError
from shared.exits import EXIT_FORCED, EXIT_OK

from .arbiter import Arbiter
from .config import Settings
from .node_relay import UpstreamOptions
from .node_router import NodeRouter
from .rundir import RuntimeDir
from .systemd import Notifier

logger = logging.getLogger("mcp_supervisor.node")

READY_TIMEOUT = 60.0
"""systemd gets READY=1 once every worker has started (READY at the node) or after this long anyway."""
KEPT_ON_RELOAD = (
    "node_connect", "node_server_key", "node_key", "node_name", "runtime_dir", "max_message_size",
    "heartbeat_interval",
)  # fmt: skip
"""Settings a node was started with that a reload keeps (a change needs a restart)."""


class Node:
    """The node of ``settings`` (its workers, its keys and its front in ``upstream``)."""

    def __init__(
        self,
        settings: Settings,
        upstream: UpstreamOptions,
        reload_settings: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self._reload_settings = reload_settings
        self.runtime_dir = RuntimeDir(settings.runtime_dir, f"node-{upstream.node}")
        pools = [runtime for runtime, count in settings.worker_counts().items() if count > 0]
        self.router = NodeRouter(
            self.runtime_dir.endpoint,
            pools=pools,
            upstream=upstream,
            max_message_size=settings.max_message_size,
            heartbeat_interval=settings.heartbeat_interval,
        )
        self.arbiter = Arbiter(settings, self.router)
        self.router.on_ready = self.arbiter.on_ready
        self.router.on_unresponsive = self.arbiter.on_unresponsive
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[object]] = set()

    def request_stop(self, reason: str) -> None:
        """Queue a stop (from a signal handler); idempotent."""
        if not self._stop.is_set():
            logger.info("stopping: %s", reason)
            self._stop.set()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code (``EXIT_FORCED`` when calls were cut short)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        await self.router.start()
        self.arbiter.containment.enable()
        self.arbiter.start()
        upstream = self.router.upstream
        logger.info(
            "node %s (pid %d): %s for the front at %s",
            upstream.node, os.getpid(),
            ", ".join(f"{count} {runtime}" for runtime, count in self.settings.worker_counts().items() if count),
            upstream.endpoint,
        )  # fmt: skip
        self._spawn(self._serve_systemd())
        await self._stop.wait()
        self.notifier.stopping()
        for task in list(self._tasks):
            task.cancel()
        clean = await self.arbiter.stop(self.settings.shutdown_grace)
        await self.router.aclose()
        self.runtime_dir.cleanup()
        self.notifier.close()
        logger.info("stopped %s", "cleanly" if clean else "after killing what did not finish in time")
        return EXIT_OK if clean else EXIT_FORCED

    async def reload(self) -> str | None:
        """Re-read the configuration and replace every worker without failing a call; returns None, or
        why it was abandoned (the running workers keep serving then)."""
        if self._reload_settings is None:
            return "this node cannot reload"
        self.notifier.reloading()
        try:
            try:
                fresh = self._reload_settings()
            except ConfigError as exc:
                logger.error("reload abandoned, the configuration is invalid: %s", exc)
                return str(exc)
            kept = {key: getattr(self.settings, key) for key in KEPT_ON_RELOAD}
            for key, value in kept.items():
                if getattr(fresh, key) != value:
                    logger.warning(
                        "reload: %s changed but only takes effect at start; keeping %r", key, value
                    )
            fresh = fresh.model_copy(update=kept)
            failure = await self.arbiter.reload(fresh)
            if failure is None:
                self.settings = fresh
                logging.getLogger().setLevel(fresh.log_level.upper())
            return failure
        finally:
            self.notifier.ready(self._summary())

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _summary(self) -> str:
        relays = self.router.relays()
        joined = sum(1 for relay in relays if relay.state == "joined")
        return f"{joined} of {len(self.arbiter.workers)} workers joined the front at {self.router.upstream.endpoint}"

    async def _serve_systemd(self) -> None:
        """READY=1 once every worker has started, then WATCHDOG=1 and STATUS= while the loop runs."""
        waits = [asyncio.ensure_future(worker.settled.wait()) for worker in self.arbiter.workers.values()]
        if waits:
            _, late = await asyncio.wait(waits, timeout=READY_TIMEOUT)
            for wait in late:
                wait.cancel()
        self.notifier.ready(self._summary())
        interval = self.notifier.watchdog_interval or 5.0
        while True:
            await asyncio.sleep(interval)
            self.notifier.watchdog()
            self.notifier.status(self._summary())
