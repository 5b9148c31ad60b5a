"""The router: the supervisor's ZeroMQ ROUTER (ipc, plus tcp for remote nodes), frame dispatch, in-flight table.

Workers connect with a DEALER whose identity is ``<worker id>/<pid>``, so each incarnation of a worker is
a distinct peer and a frame from a dead incarnation can never be mistaken for its replacement's. A worker
becomes routable when its READY arrives with the protocol version and pid the arbiter expects.

``Router.call`` is the whole call path on this side: catalog lookup, the least-loaded ready worker of
the entry's pool (a tool or any other kind), CALL, then PROGRESS/LOG frames handed to the caller in order
until RESULT or ERROR. A worker's CATALOG_CHANGED replaces its catalog. When a worker dies the arbiter
calls ``worker_gone`` and every call that worker held is answered at once with ``WorkerLostError``.

The router composes parts it calls into; none of them owns a socket, and none calls back into the router
but through what it was given (a send function, a callback, ``Router.call`` for a tool-to-tool call):

- ``links.Links``: the connected workers, and the READY checks that admit one;
- ``catalog.Catalog``: each pool's catalog, the listed entries of every kind, their pools, failed pools;
- ``admission.Admission``: the routable workers of each pool, the limits, the calls waiting for room;
- ``inflight``: ``PendingCall``, one entry of the in-flight table, and the backstop of every call;
- ``worker_requests.WorkerRequests``: the requests a running tool or a worker makes;
- ``liveness.Liveness``: heartbeats and silent workers;
- ``quarantine.Quarantine``: the tools charged with their workers' deaths, and the ones refused for it.
- ``remote_workers.RemoteWorkers``: the workers of remote nodes, from the tcp listener (``worker_listener``).

Words (docs/architecture.md): a *pool* is a set of workers a call is routed among; a *runtime* is an
event loop. A *timeout* is a duration in seconds; a *deadline* an instant of ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq

from shared.errors import (
    CallError,
    CallTimeoutError,
    ProtocolError,
    UnknownToolError,
    WorkerLostError,
)
from shared.protocol import (
    Call,
    Cancel,
    CatalogChanged,
    Drain,
    Error,
    Heartbeat,
    Leaving,
    Log,
    Message,
    Progress,
    Ready,
    Request,
    RequestCancel,
    ResourceUpdated,
    Result,
    Stop,
    Threads,
    decode,
)

from .admission import Admission
from .catalog import SETTLE_TIMEOUT, Catalog
from .frames import fitting_frame
from .inflight import BACKSTOP_MARGIN, Backstop, PendingCall, fail_in_flight, serve_sweeper
from .links import REMOTE_MARK, Links, Refused, WorkerLink
from .liveness import Liveness
from .quarantine import Quarantine, QuarantinePolicy, suspects
from .remote_workers import RemoteWorkers
from .router_types import FrameSocket, LogCallback, ProgressCallback, RequestCallback, SocketOpener
from .stats import CallStats, outcome_of
from .worker_listener import ListenOptions, WorkerSockets, open_worker_sockets
from .worker_requests import WorkerRequests

__all__ = ["Router", "WorkerLink"]

logger = logging.getLogger("mcp_supervisor.router")


class Router:
    """Owns the ROUTER socket bound at ``endpoint`` (or the socket ``open_socket`` returns).

    Options: ``pools`` (the pools served, in configuration order; ``optional_pools`` of them only remote
    workers fill), ``listen`` (the tcp listener for remote workers, or None), ``max_message_size`` (bytes),
    ``heartbeat_interval`` (seconds), ``request_timeout`` (the config's ``request_timeout``: the timeout
    the front and the fast path give ``call``, and a tool-to-tool call without one), ``max_in_flight``
    (calls per worker), ``max_queued`` (calls waiting for room) and ``quarantine`` (when a tool that keeps
    killing its worker is refused); a reload changes the last four (``set_limits``).

    Callbacks (plain attributes, set by whoever composes the supervisor):
    ``on_ready(link)`` when a worker incarnation becomes routable; ``on_unresponsive(link)`` when one
    misses ``LIVENESS_MISSES`` heartbeats in a row; ``catalog.on_change()`` when the listed entries
    changed after start-up (a worker with other entries, a pool failed or back); ``on_resource_updated(uri)``
    when a worker published a resource change; ``on_task_changed(task)`` with each MCP task's new state.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        pools: list[str],
        optional_pools: frozenset[str] = frozenset(),
        listen: ListenOptions | None = None,
        max_message_size: int,
        heartbeat_interval: float,
        request_timeout: float = 300.0,
        max_in_flight: int = 256,
        max_queued: int = 1024,
        quarantine: QuarantinePolicy | None = None,
        open_socket: SocketOpener | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.pools = list(pools)
        self.max_message_size = max_message_size
        self.request_timeout = request_timeout
        self.stats = CallStats()
        self.on_ready: Callable[[WorkerLink], None] = lambda link: None
        self.on_unresponsive: Callable[[WorkerLink], None] = lambda link: None
        self.on_resource_updated: Callable[[str], None] = lambda uri: None
        self.on_task_changed: Callable[[dict[str, Any]], None] = lambda task: None
        self._open_socket = open_socket or (
            lambda on_frames: open_worker_sockets(endpoint, max_message_size, on_frames, listen)
        )
        self._socket: FrameSocket | None = None
        self.catalog = self._catalog = Catalog(self.pools, optional_pools)  # the front lists every kind
        self._table = Links(self.pools, listen is not None, self._catalog.catalog_of)
        self._links = self._table.by_identity
        self.recent_errors = self._table.errors  # the last errors, with their worker (recent_errors.py)
        self._pending: dict[int, PendingCall] = {}
        self._backstops: set[Backstop] = set()
        self._served = self._table.served
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._admission = Admission(self._catalog, max_in_flight=max_in_flight, max_queued=max_queued)
        self.remote = RemoteWorkers(
            self._table, self._catalog, self._admission, self._send_raw, self._drop_link
        )
        self._requests = WorkerRequests(self, self._catalog, self._links, self._send_raw)
        self._requests.on_task_changed = lambda task: self.on_task_changed(task)
        self._liveness = Liveness(self._links, heartbeat_interval, self._send, self._on_silent)
        self.quarantine = Quarantine(quarantine or QuarantinePolicy(), self.stats.answered)
        self.quarantine.on_change = self._catalog.set_quarantined

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the socket and start receiving; returns once bound.

        Raises:
            ConfigError: the tcp listener for remote workers cannot be bound, or its keys read.
        """
        self._socket = self._open_socket(self._on_frames)
        if isinstance(self._socket, WorkerSockets):
            self.remote.receive_waiting = self._socket.receive_waiting
        loop = self._loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._liveness.serve()),
            loop.create_task(serve_sweeper(self._backstops)),
        ]

    async def aclose(self) -> None:
        """Stop receiving, answer every open call with an error and close the socket; idempotent."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.quarantine.close()
        for link in list(self._links.values()):
            self._drop_link(link, "the supervisor is stopping")
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # -- arbiter interface -------------------------------------------------------------------------

    def expect(self, worker_id: str, pid: int, *, held: bool = False) -> None:
        """Accept a READY from ``worker_id`` only when it comes from ``pid`` (a process just spawned).

        A *held* worker (a replacement candidate) is connected but neither routed to nor merged into the
        catalog until ``promote(pid)``.
        """
        self._table.expect(worker_id, pid, held=held)

    def promote(self, pid: int) -> None:
        """Start routing to a held worker and take its catalog; a no-op for one that is not held."""
        link = self._table.unhold(pid)
        if link is not None:
            self._activate(link)

    def worker_gone(self, pid: int, reason: str, *, death: bool = False) -> bool:
        """The arbiter saw process ``pid`` exit: fail its in-flight calls now and stop routing to it.

        ``death``: it crashed (not a stop, not a replacement), so the tools it was running are charged with
        it (``quarantine.py``). Returns whether it was running a tool call."""
        link = self._table.forget(pid)
        if link is None:
            return False
        tools = suspects(link, self._pending)
        if death:
            self.quarantine.record_death(link.pool, tools)
        self._drop_link(link, reason)
        return bool(tools)

    def set_pool_failed(self, pool: str, reason: str | None) -> None:
        """Mark a pool failed (calls to it fail fast with ``reason``), or clear the mark with ``None``."""
        self._catalog.set_failed(pool, reason)
        if reason is not None:
            self._admission.wake(pool)  # waiters fail fast

    def drain(self, pid: int) -> None:
        """Route no new call to process ``pid`` and tell it so (DRAIN); its calls in flight go on."""
        link = self.link_of(pid)
        if link is not None and not link.draining:
            link.draining = True
            self._send(link, Drain())
            self._admission.remove(link)

    def stop(self, pid: int, reason: str) -> None:
        """Send STOP to process ``pid``; a no-op when it is not connected."""
        link = self.link_of(pid)
        if link is not None:
            self._send(link, Stop(reason))

    def links(self) -> list[WorkerLink]:
        return list(self._links.values())

    def link_of(self, pid: int) -> WorkerLink | None:
        return self._table.of(pid)

    # -- catalog and admission, as the front and /status see them ----------------------------------

    async def wait_settled(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait (at most ``timeout`` seconds) until every pool has announced its catalog once or was
        marked failed; never raises ``TimeoutError``."""
        await self._catalog.wait_settled(timeout)

    def tools(self) -> list[dict[str, Any]]:
        """The catalog: the tools of every pool's last READY, but a failed pool's, sorted by name."""
        return self._catalog.tools()

    def tool(self, name: str) -> dict[str, Any] | None:
        return self._catalog.tool(name)

    @property
    def catalog_version(self) -> int:
        """Changes whenever ``tools()`` does."""
        return self._catalog.version

    def pool_failures(self) -> dict[str, str]:
        """Pool → why it is failed, for the failed pools."""
        return dict(self._catalog.failures)

    def ready_pools(self) -> dict[str, bool]:
        """Pool → whether a worker of it is routable."""
        return self._admission.ready_pools()

    @property
    def queued_calls(self) -> int:
        """Calls waiting for room on a worker now."""
        return self._admission.queued

    def set_limits(
        self, *, request_timeout: float, max_in_flight: int, max_queued: int, quarantine: QuarantinePolicy
    ) -> None:
        """Change what a reload changes, for the calls that start afterwards."""
        self.request_timeout = request_timeout
        self.quarantine.policy = quarantine
        self._admission.max_in_flight = max_in_flight
        self._admission.max_queued = max_queued

    # -- calls -------------------------------------------------------------------------------------

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any] | None,
        *,
        timeout: float,
        progress_token: str | int | None = None,
        meta: dict[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
        on_log: LogCallback | None = None,
        on_request: RequestCallback | None = None,
        kind: str = "tool",
    ) -> dict[str, Any]:
        """Run ``tool`` on a worker of its pool and return its ``CallToolResult`` (wire form).

        Every kind of entry runs this way: with ``kind`` another than ``"tool"``, ``tool`` is the entry's
        key (``shared.kinds``) and the result is that kind's (``ReadResourceResult``, ``GetPromptResult``,
        ``CompleteResult``); a failure of its function is an error (``CallError``), never ``isError``.

        ``timeout`` (seconds) sets the call's deadline; the worker applies it, or the tool's
        ``timeout_seconds`` when shorter.

        ``on_progress`` and ``on_log`` are awaited in the caller's task, in the order the worker sent
        them, and always before the result is returned. A request the tool makes is answered in a task
        of its own: ``tools/call`` by the router itself (tool-to-tool), anything else by ``on_request``
        (the client); without ``on_request`` the tool is told the client cannot answer.

        A read-only or idempotent tool whose worker dies during the call is sent once more, to another
        worker of its pool (the restarted one, if it is the only one), within the same deadline.

        Raises:
            UnknownToolError: no tool of that name in the catalog.
            InvalidArgumentsError: the worker refused the arguments, or they exceed ``max_message_size``.
            NoWorkerError: no worker of the tool's pool became ready in time.
            ServerBusyError: admission limits reached (see ``Admission.admit``).
            ToolQuarantinedError: the tool kept killing its worker (``quarantine.py``); no worker is asked.
            WorkerLostError: the worker died or stopped while running the call.
            CallTimeoutError: the worker did not answer within ``timeout`` (plus ``BACKSTOP_MARGIN``).

        Cancellation: cancelling the caller sends CANCEL to the worker and forgets the call; it does not
        wait for the worker.
        """
        if not self._catalog.settled.is_set():
            await self._catalog.wait_settled()
        ref = tool if kind == "tool" else f"{kind}:{tool}"  # shared.kinds.entry_ref
        pool = self._catalog.pool_of.get(ref)
        if pool is None or pool not in self._served:
            raise UnknownToolError(f"unknown {kind.replace('_', ' ')} {tool!r}")
        deadline, retry_safe = time.monotonic() + timeout, self._catalog.retry_safe  # rules at its start
        callbacks = (on_progress, on_log, on_request)
        started = time.perf_counter()
        outcome = "cancelled"
        loop = self._loop or asyncio.get_running_loop()
        task = asyncio.current_task(loop)  # with the loop: no get_running_loop (a getpid on 3.11)
        assert task is not None
        cancelling = task.cancelling()
        backstop = Backstop(task, loop.time() + timeout + BACKSTOP_MARGIN)
        self._backstops.add(backstop)
        try:
            try:
                if ref in self.quarantine.active and (refused := self.quarantine.refusal(ref)):
                    raise refused
                result = await self._attempt(
                    tool, kind, ref, pool, arguments, deadline, progress_token, meta, *callbacks
                )
            except WorkerLostError as lost:
                # not ToolMetadata.retry_safe (as listed at the call's start: a pool's last worker lost
                # unlists it), or its death just quarantined it
                if ref not in retry_safe or ref in self.quarantine.active:
                    raise
                logger.warning("retrying %s once on another worker: %s", ref, lost)
                result = await self._attempt(
                    tool, kind, ref, pool, arguments, deadline, progress_token, meta, *callbacks
                )
            outcome = "tool_error" if result.get("isError") else "ok"
            return result
        except asyncio.CancelledError:
            if backstop.fired and task.uncancel() <= cancelling:
                outcome = "timeout"
                raise CallTimeoutError(f"{kind} {tool!r} did not answer within {timeout:g} s") from None
            raise
        except CallError as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            self._backstops.discard(backstop)
            self.stats.record(ref, pool, outcome, time.perf_counter() - started)

    async def _attempt(
        self,
        tool: str,
        kind: str,
        ref: str,
        pool: str,
        arguments: dict[str, Any] | None,
        deadline: float,
        progress_token: str | int | None,
        meta: dict[str, Any] | None,
        on_progress: ProgressCallback | None,
        on_log: LogCallback | None,
        on_request: RequestCallback | None,
    ) -> dict[str, Any]:
        """One try of ``call`` on one worker: admission (a worker is picked without a coroutine when one
        has room), CALL, then the call's events until its answer (``PendingCall.answer``)."""
        admission = self._admission
        link = admission.take(pool, ref) or await admission.admit(pool, ref, deadline)
        call_id = next(self._ids)
        pending = PendingCall(call_id, ref, link, self._loop or asyncio.get_running_loop())
        self._pending[call_id] = pending
        link.in_flight.add(call_id)
        try:
            timeout = max(0.0, deadline - time.monotonic())
            self._send(link, Call(call_id, tool, arguments or {}, timeout, progress_token, meta, kind))
            return await pending.answer(on_progress, on_log, on_request, self._requests.start_for_call)
        finally:
            for task in list(pending.requests):
                task.cancel()
            self._pending.pop(call_id, None)
            link.in_flight.discard(call_id)
            if not pending.finished and link.identity in self._links:
                self._send(link, Cancel(call_id, "cancelled by the client"))
            admission.release(ref)

    # -- socket ------------------------------------------------------------------------------------

    def _send(self, link: WorkerLink, message: Message) -> None:
        self._send_raw(link.identity, message)

    def _send_raw(self, identity: bytes, message: Message) -> None:
        """Queue a frame to a worker; never blocks. A send to a peer that is gone fails (ROUTER_MANDATORY)
        and is only logged at debug level: the arbiter reports the exit. A frame over ``max_message_size``
        is never sent (``frames.fitting_frame``): a CALL raises ``InvalidArgumentsError``, nothing else."""
        frame = fitting_frame(message, self.max_message_size)
        if self._socket is None or frame is None:
            return
        try:
            self._socket.send([identity, frame])
        except zmq.ZMQError as exc:
            logger.debug("cannot send to %s: %s", identity.decode(errors="replace"), exc)
            self.remote.send_failed(identity, exc)

    def _on_frames(self, frames: list[bytes]) -> None:
        """One message from a worker, ``[identity, frame]``; a message that cannot be handled is logged and
        dropped by the socket adapter, never allowed to stop receiving."""
        if len(frames) != 2:
            logger.warning("dropping a message of %d frames", len(frames))
            return
        identity, frame = frames
        try:
            message = decode(frame)
        except ProtocolError as exc:
            logger.error("dropping a frame from %s: %s", identity.decode(errors="replace"), exc)
            return
        link = self._links.get(identity)
        if link is None:
            if isinstance(message, Ready):
                self._on_ready_message(identity, message)
            elif identity[:1] == REMOTE_MARK:
                self.remote.unknown(identity, message)
            return
        link.last_heard = time.monotonic()
        if isinstance(message, (Result, Error)):
            pending = self._pending.get(message.call_id)
            if pending is not None and pending.link is link:
                link.in_flight.discard(message.call_id)
                pending.put(message)
        elif isinstance(message, Request) and message.call_id == 0:
            self._requests.start(link, message)
        elif isinstance(message, RequestCancel):
            self._requests.cancel(link, message.request_id)
        elif isinstance(message, (Progress, Log, Request)):
            pending = self._pending.get(message.call_id)
            if pending is not None and pending.link is link:
                pending.put(message)
            elif isinstance(message, Request):
                self._requests.refuse_late(link, message)
        elif isinstance(message, ResourceUpdated):
            self.on_resource_updated(message.uri)
        elif isinstance(message, Threads):
            self._admission.threads_changed(link, message)
        elif isinstance(message, CatalogChanged):
            if self._table.recatalog(link, message):
                self._catalog.take(link.pool, link.catalog, link.load_errors, link.elsewhere)
        elif isinstance(message, Leaving):
            self.remote.leaving(link, message)
        elif not isinstance(message, Heartbeat):
            logger.warning("ignoring unexpected %s from %s", type(message).__name__, link.worker_id)

    # -- workers coming and going ------------------------------------------------------------------

    def _on_ready_message(self, identity: bytes, message: Ready) -> None:
        try:
            link = self._table.accept(identity, message)
        except Refused as exc:
            self._send_raw(identity, Stop(f"refused: {exc}"))
            return
        if not link.held:
            self._activate(link)
        (self.remote.joined if link.node else self.on_ready)(link)  # a remote pid: not the arbiter's

    def _activate(self, link: WorkerLink) -> None:
        """Make a connected worker routable and its catalog the catalog of its pool."""
        self._catalog.take(link.pool, link.catalog, link.load_errors, link.elsewhere)
        self._admission.add(link)

    def _on_silent(self, link: WorkerLink) -> None:
        """A worker missed its heartbeats: drain it and have the arbiter kill it (drop a remote one)."""
        if link.node is not None:
            return self.remote.silent(link)
        self.drain(link.pid)
        self.on_unresponsive(link)

    def _drop_link(self, link: WorkerLink, reason: str) -> None:
        self._links.pop(link.identity, None)
        # the calls this worker made on its own behalf (the task queue's) die with it, so that a task
        # recovered by its next incarnation can never run twice at once
        self._requests.cancel_all(link)
        fail_in_flight(link, self._pending, WorkerLostError(reason))
        self._admission.remove(link)
        self.remote.gone(link)
