"""``Supervisor``: the router, the arbiter and the front in one event loop, from start to exit code.

One loop; signal handlers only queue an action (SIGTERM/SIGINT → stop), and ``run_*`` handles it:
stop accepting, let in-flight calls finish within ``shutdown_grace``, STOP the workers, SIGKILL the ones
that do not exit, remove the runtime directory.

Once the front is built and before it serves, the heap start-up built is frozen and generation 0 is
collected less often (``shared.heap``): the collector's passes no longer walk the imported modules, which
made the p99 under load.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import sniffio
from mcp.server.stdio import stdio_server
from starlette.types import ASGIApp

from shared.errors import ConfigError
from shared.exits import EXIT_FORCED, EXIT_OK, EXIT_STARTUP
from shared.heap import GEN0_THRESHOLD, freeze_startup_heap

from .arbiter import QUEUE_POOL, Arbiter
from .auth.middleware import AuthStats
from .config import Settings
from .connections import ConnectionTable
from .containment import refuse_peer
from .control import CommandError, ControlServer, Handler
from .fastpath import FastPathStats
from .front import build_http_app, build_mcp_server
from .http_serving import FRONT_LINGER, http_server
from .quarantine import quarantine_policy
from .queue_status import QueueStatus
from .router import Router
from .rundir import RuntimeDir
from .sampler import ProcessSampler
from .scaling import counts_refusal, scale_refusal
from .status import fresh_status_document
from .systemd import Notifier
from .task_db import choose_task_db
from .worker_listener import listen_options
from .worker_user import prepare as prepare_worker_user

logger = logging.getLogger("mcp_supervisor")

RESTART_ONLY = (
    "host",
    "port",
    "runtime_dir",
    "max_message_size",
    "max_body_size",
    "max_connections",
    "max_connections_per_client",
    "header_timeout",
    "body_timeout",
    "max_sessions",
    "session_idle_timeout",
    "max_sessions_per_principal",
    "worker_user",
    "worker_group",
    "allowed_hosts",
    "allowed_origins",
    "heartbeat_interval",
    "enable_metrics",
    "fast_path",
    *(key for key in Settings.model_fields if key.startswith("auth")),
    "public_url",
    "rate_limit",
    "allow_unauthenticated",
    "worker_listen",
    "worker_server_key",
    "worker_allowed_keys",
)
"""Settings the running front and router were built with: a reload keeps their old values."""
READY_TIMEOUT = 60.0
"""systemd gets READY=1 once every runtime has announced itself or failed, or after this long anyway."""
STATUS_INTERVAL = 5.0
"""How often the STATUS= line is refreshed."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""Both ask for the same graceful stop."""


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop, stop: Callable[[str], None], reload: Callable[[], None]
) -> None:
    """``STOP_SIGNALS`` call ``stop(<signal name>)`` and SIGHUP calls ``reload()``, on ``loop``.

    asyncio calls them from the loop, not in the signal handler's context; they should only queue work.
    """
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig.name)
    loop.add_signal_handler(signal.SIGHUP, reload)


def _succeeded(failure: str | None) -> str:
    if failure is not None:
        raise CommandError(failure)
    return "done"


class Supervisor:
    def __init__(
        self, settings: Settings, instance: str, reload_settings: Callable[[], Settings] | None = None
    ) -> None:
        refusal = counts_refusal(settings.worker_counts())
        if refusal is not None:
            raise ConfigError(refusal)
        self._chosen_task_db: str | None = None
        """The database chosen at start when ``task_db`` is not set: a reload keeps it."""
        if settings.task_queue:
            task_db, note = choose_task_db(settings.task_db, stdio=instance.startswith("stdio"))
            if settings.task_db is None:
                self._chosen_task_db = task_db
                settings = settings.model_copy(update={"task_db": task_db})
            if note is not None:
                logger.warning("%s", note)
        self.settings = settings
        self._reload_settings = reload_settings
        self.runtime_dir = RuntimeDir(settings.runtime_dir, instance)
        prepare_worker_user(settings)
        pools = list(settings.worker_counts())  # every runtime: one at 0 may be scaled up
        if settings.task_queue:
            pools.append(QUEUE_POOL)
        listen = listen_options(settings)
        # with a listener, a runtime without a local worker is a pool only nodes fill
        counts = settings.worker_counts()
        optional = [runtime for runtime, count in counts.items() if count == 0] if listen else []
        self.router = Router(
            self.runtime_dir.endpoint,
            pools=pools,
            optional_pools=frozenset(optional),
            listen=listen,
            max_message_size=settings.max_message_size,
            heartbeat_interval=settings.heartbeat_interval,
            request_timeout=settings.request_timeout,
            max_in_flight=settings.max_in_flight_per_worker,
            max_queued=settings.max_queued_calls,
            quarantine=quarantine_policy(settings),
        )
        self.arbiter = Arbiter(settings, self.router)
        self.arbiter.on_pools = self.router.catalog.configure
        self.router.catalog.configure({worker.pool for worker in self.arbiter.workers.values()})
        self.router.on_ready = self.arbiter.on_ready
        self.router.on_unresponsive = self.arbiter.on_unresponsive
        self.notifier = Notifier()
        self.sampler = ProcessSampler(
            lambda: [self.pid, *(w.pid for w in self.arbiter.all_workers() if w.pid)]
        )
        self.pid = os.getpid()
        self.started_at = time.monotonic()
        self.stopping = False
        self.fast_path_stats = FastPathStats()
        self.auth_stats = AuthStats()
        self.auth_warning: str | None = None
        """Set by the command line when it serves a non-loopback address without authorization."""
        self.queue_status = QueueStatus() if settings.task_queue else None
        self.connections = ConnectionTable(settings.max_connections, settings.max_connections_per_client)
        self._stop_requested: asyncio.Event | None = None
        self._reloads: set[asyncio.Task[str | None]] = set()

    def request_stop(self, reason: str) -> None:
        """Queue a stop (safe from a signal handler); idempotent."""
        if self._stop_requested is not None and not self._stop_requested.is_set():
            logger.info("stopping: %s", reason)
            self._stop_requested.set()

    def request_reload(self) -> None:
        """Queue a rolling reload (SIGHUP); safe from a signal handler."""
        if self.stopping or self._reload_settings is None:
            return
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reload_done)

    def _reload_done(self, task: asyncio.Task[str | None]) -> None:
        self._reloads.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("reload failed", exc_info=task.exception())

    async def reload(self) -> str | None:
        """Re-read the configuration and replace every worker without failing a call.

        Returns ``None`` on success or the one-line reason it was abandoned; the running workers keep
        serving in that case. Settings that only take effect at start are kept, with a warning.
        """
        assert self._reload_settings is not None
        logger.info("reloading: reading the configuration again")
        self.notifier.reloading()
        try:
            return await self._reload(self._reload_settings)
        finally:
            self.notifier.ready(self.summary())

    async def _reload(self, reload_settings: Callable[[], Settings]) -> str | None:
        try:
            fresh = reload_settings()
            if fresh.task_db is None and self._chosen_task_db is not None:
                fresh = fresh.model_copy(update={"task_db": self._chosen_task_db})
            refusal = counts_refusal(fresh.worker_counts())
            if refusal is not None:
                raise ConfigError(refusal)
        except ConfigError as exc:
            logger.error("reload abandoned, the configuration is invalid: %s", exc)
            return str(exc)
        kept = {
            key: getattr(self.settings, key)
            for key in RESTART_ONLY
            if getattr(fresh, key) != getattr(self.settings, key)
        }
        for key, value in kept.items():
            logger.warning("reload: %s changed but only takes effect at start; keeping %r", key, value)
        fresh = fresh.model_copy(update=kept)
        try:
            with self.arbiter.containment.spawning():  # the probe is a child, not a stray to sweep
                await asyncio.to_thread(prepare_worker_user, fresh)  # a new task_db's folder, the probe
        except ConfigError as exc:
            logger.error("reload abandoned: %s", exc)
            return str(exc)
        failure = await self.arbiter.reload(fresh)
        if failure is None:  # only a reload that happened changes the running settings
            self.settings = fresh
            self.router.set_limits(
                request_timeout=fresh.request_timeout,
                max_in_flight=fresh.max_in_flight_per_worker,
                max_queued=fresh.max_queued_calls,
                quarantine=quarantine_policy(fresh),
            )
            logging.getLogger().setLevel(fresh.log_level.upper())
            logger.info("reload done: %d worker(s) serving", len(self.arbiter.workers))
        return failure

    def summary(self) -> str:
        """One line for systemd's STATUS=: tools, workers ready per runtime, calls answered."""
        parts = []
        for runtime in self.router.pools:
            workers = [w for w in self.arbiter.workers.values() if w.runtime == runtime]
            ready = sum(1 for w in workers if w.state == "ready")
            failure = self.router.pool_failures().get(runtime)
            parts.append(f"{runtime} {ready}/{len(workers)} ready" + (" (FAILED)" if failure else ""))
        return (
            f"serving {len(self.router.tools())} tools; {', '.join(parts)}; {self.router.stats.total()} calls"
        )

    async def _serve_systemd(self) -> None:
        """READY=1 once the workers have settled, then STATUS= and WATCHDOG=1 while the loop runs."""
        await self.router.wait_settled(timeout=READY_TIMEOUT)
        self.notifier.ready(self.summary())
        interval = self.notifier.watchdog_interval
        tick = min(interval, STATUS_INTERVAL) if interval else STATUS_INTERVAL
        last_status = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            if interval:
                self.notifier.watchdog()
            if time.monotonic() - last_status >= STATUS_INTERVAL:
                self.notifier.status(self.summary())
                last_status = time.monotonic()

    async def _tool_import_failure(self) -> str | None:
        """Once the workers have settled, the first configured tool module that failed to import (as the
        workers word it: ``shared.worker.host``), or None; the default tools are not waited for."""
        if not self.settings.tools:
            return None
        await self.router.wait_settled(timeout=READY_TIMEOUT)
        failed = [error for error in self.router.catalog.load_errors() if " failed to import: " in error]
        return failed[0] if failed else None

    def _control_handlers(self) -> dict[str, Handler]:
        """The commands of the control socket (see ``control.py``)."""

        async def status(request: dict[str, Any]) -> Any:
            return await fresh_status_document(self.router, self)

        async def reload(request: dict[str, Any]) -> Any:
            if self._reload_settings is None:
                raise CommandError("this supervisor cannot reload")
            return _succeeded(await self.reload())

        async def restart(request: dict[str, Any]) -> Any:
            target = request.get("target")
            if not isinstance(target, str):
                raise CommandError('restart needs a "target": a runtime (asyncio, trio) or a worker id')
            return _succeeded(await self.arbiter.restart(target))

        async def scale(request: dict[str, Any]) -> Any:
            runtime, count = request.get("runtime"), request.get("count")
            if runtime not in self.settings.worker_counts():
                raise CommandError(f"scale needs a runtime among {', '.join(self.settings.worker_counts())}")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 256:
                raise CommandError("scale needs a count from 0 to 256")
            refusal = scale_refusal(runtime, count, self.arbiter.settings.worker_counts()[runtime])
            if refusal is not None:
                raise CommandError(refusal)
            return _succeeded(await self.arbiter.scale(runtime, count))

        async def release(request: dict[str, Any]) -> Any:
            tool = request.get("tool")
            if not isinstance(tool, str) or not tool:
                raise CommandError('release needs a "tool": the name of a quarantined tool')
            if self.router.quarantine.release(tool) is None:
                if tool not in self.router.catalog.pool_of or ":" in tool:
                    raise CommandError(f"no tool named {tool!r}")
                raise CommandError(f"tool {tool!r} is not quarantined")
            return f"tool {tool!r} released: its calls run again and its death count starts from 0"

        async def stop(request: dict[str, Any]) -> Any:
            self.request_stop("stop requested on the control socket")
            return "stopping"

        return {
            "status": status,
            "reload": reload,
            "restart": restart,
            "scale": scale,
            "release": release,
            "stop": stop,
        }

    async def _start(self) -> None:
        # anyio asks sniffio which library runs, on nearly every operation of the SDK's transport; sniffio
        # finds out through asyncio.current_task(), whose get_running_loop() costs a getpid() call on
        # Python 3.11. This thread only ever runs this asyncio loop: say so once.
        sniffio.thread_local.name = "asyncio"
        self._stop_requested = asyncio.Event()
        install_signal_handlers(asyncio.get_running_loop(), self.request_stop, self.request_reload)
        await self.router.start()
        self.arbiter.containment.enable()  # before the first worker: their trees never leave ours
        self.arbiter.start()
        self._sampling = asyncio.create_task(self.sampler.serve())
        self.control = ControlServer(
            self.runtime_dir.control_path, self._control_handlers(), refuse=refuse_peer
        )
        await self.control.start()
        self._systemd = asyncio.create_task(self._serve_systemd())

    async def _finish(
        self, serving: asyncio.Task[None], stop_serving: Callable[[], None], cut_serving: Callable[[], None]
    ) -> int:
        """Wait for a stop request (or the front ending), then shut everything down in order.

        ``stop_serving`` makes the front stop accepting; once the tool calls are drained, what is left on
        the front are idle streams (an SSE GET, a stdio pipe), which ``cut_serving`` closes after
        ``FRONT_LINGER`` seconds.
        """
        assert self._stop_requested is not None
        waiter = asyncio.ensure_future(self._stop_requested.wait())
        await asyncio.wait([serving, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        self.stopping = True
        self._systemd.cancel()
        self.notifier.stopping()
        for reload in list(self._reloads):
            reload.cancel()
        stop_serving()
        grace = self.settings.shutdown_grace
        clean, released = await asyncio.gather(self.arbiter.stop(grace), self.router.remote.release(grace))
        clean = clean and released
        done, _ = await asyncio.wait([serving], timeout=FRONT_LINGER)
        if not done:
            cut_serving()
            await asyncio.wait([serving], timeout=FRONT_LINGER)
        self._sampling.cancel()
        await self.control.aclose()
        await self.router.aclose()
        self.runtime_dir.cleanup()
        self.notifier.close()
        if serving.done() and not serving.cancelled() and serving.exception() is not None:
            raise serving.exception()  # type: ignore[misc]
        logger.info("stopped %s", "cleanly" if clean else "after killing what did not finish in time")
        return EXIT_OK if clean else EXIT_FORCED

    def http_app(self) -> ASGIApp:
        """The ASGI app ``run_http`` serves: ``/mcp`` and the health, status and metrics endpoints."""
        return build_http_app(build_mcp_server(self.router, self.settings), self.router, self.settings, self)

    async def run_http(self, sock: socket.socket) -> int:
        """Serve MCP over Streamable HTTP on ``sock`` until SIGTERM/SIGINT; returns the exit code."""
        await self._start()
        server = http_server(self.http_app(), self.settings, self.connections)
        freeze_startup_heap(GEN0_THRESHOLD)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        host, port = sock.getsockname()[:2]
        logger.info("serving MCP on http://%s:%d/mcp", f"[{host}]" if ":" in host else host, port)

        def stop_serving() -> None:
            # Stop accepting before the workers are drained, not at uvicorn's next tick (0.1 s later): a
            # request accepted in between found no worker to run it. Closing the listener makes a balancer
            # retry elsewhere; an idle keep-alive connection closes, a busy one after its answer.
            server.should_exit = True
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.shutdown()

        def cut_serving() -> None:
            for task in list(server.server_state.tasks):
                task.cancel()

        try:
            return await self._finish(serving, stop_serving, cut_serving)
        finally:
            sock.close()

    async def run_stdio(self) -> int:
        """Serve MCP over this process's stdin/stdout until stdin closes or a signal; returns the exit code.

        A configured tool module that cannot be imported ends the start (``EXIT_STARTUP``, one line on
        stderr, the last) before anything is served: a desktop client would show no tool and no reason. (Over HTTP
        the other modules keep serving and ``/status`` lists the error.)
        """
        await self._start()
        failure = await self._tool_import_failure()
        if failure is not None:
            await self._finish(asyncio.create_task(asyncio.sleep(0)), lambda: None, lambda: None)
            # after the stop, so that no worker's log (a spare importing the module too) comes after it
            print(f"mcp-supervisor: error: {failure}", file=sys.stderr, flush=True)
            return EXIT_STARTUP
        server = build_mcp_server(self.router, self.settings)
        freeze_startup_heap(GEN0_THRESHOLD)

        async def serve() -> None:
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())

        serving = asyncio.create_task(serve())

        def cut_serving() -> None:
            serving.cancel()

        return await self._finish(serving, lambda: None, cut_serving)
