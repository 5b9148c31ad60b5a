"""The router: the supervisor's only ZeroMQ ROUTER socket, the tool catalog and the in-flight table.

Workers connect with a DEALER whose identity is ``<worker id>/<pid>``, so each incarnation of a worker is
a distinct peer and a frame from a dead incarnation can never be mistaken for its replacement's. A worker
becomes routable when its READY arrives with the protocol version and pid the arbiter expects.

``Router.call`` is the whole call path on this side: catalog lookup, choice of the least-loaded ready
worker of the tool's runtime, CALL, then PROGRESS/LOG frames handed to the caller in order until RESULT
or ERROR. When a worker dies the arbiter calls ``worker_gone`` and every call that worker held is answered
at once with ``WorkerLostError``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from asyncio_worker.zmq_io import AsyncioZmqSocket
from shared.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallError,
    CallTimeoutError,
    ClientRequestError,
    NoWorkerError,
    ProtocolError,
    ServerBusyError,
    ToolDefinitionError,
    UnknownToolError,
    WorkerLostError,
    error_for_code,
    error_object,
)
from shared.metadata import ToolMetadata
from shared.protocol import (
    Call,
    Cancel,
    Drain,
    Error,
    Heartbeat,
    Log,
    Message,
    Progress,
    Ready,
    Reply,
    Request,
    RequestCancel,
    RequestProgress,
    Result,
    Stop,
    check_ready,
    decode,
    encode,
)
from shared.results import call_error_result
from shared.worker import LIVENESS_MISSES

from .stats import CallStats

logger = logging.getLogger("mcp_supervisor.router")

READY_WAIT = 10.0
"""Longest a call waits for a worker of its runtime to become ready (a restart in progress)."""
BACKSTOP_MARGIN = 2.0
"""The router gives a worker this long past the call's deadline to answer with its own timeout error."""
SWEEP_INTERVAL = 0.25
"""How often the router looks for calls past their backstop (so a backstop fires up to this late)."""

_OUTCOME_OF: dict[type[CallError], str] = {
    ServerBusyError: "busy",
    NoWorkerError: "busy",
    WorkerLostError: "worker_lost",
    CallTimeoutError: "timeout",
}

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
LogCallback = Callable[[str, Any, str | None], Awaitable[None]]
RequestCallback = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers a request a tool made of the client (``sampling/createMessage``, ``elicitation/create``)."""


@dataclass(eq=False)
class WorkerLink:
    """The router's view of one connected worker incarnation."""

    worker_id: str
    runtime: str
    pid: int
    identity: bytes
    catalog: list[dict[str, Any]]
    load_errors: list[str]
    elsewhere: dict[str, str] = field(default_factory=dict)
    last_heard: float = field(default_factory=time.monotonic)
    in_flight: set[int] = field(default_factory=set)
    draining: bool = False
    held: bool = False
    """A replacement candidate: connected, not routed to until promoted."""
    silent: bool = False
    """Declared dead for missing heartbeats; the arbiter is killing it."""
    calls_served: int = 0
    calls_failed: int = 0


@dataclass(eq=False, slots=True)
class _Backstop:
    """A call's last resort: past ``at`` (loop time) the sweeper cancels ``task`` and the call answers
    ``CallTimeoutError``. One sweeper for every call, instead of a timer per call (``asyncio.timeout``
    costs about 9 µs a call, a twentieth of the front's whole CPU per call)."""

    task: asyncio.Task[Any]
    at: float
    fired: bool = False


@dataclass(eq=False, slots=True)
class _Pending:
    """One call in flight: the events its worker sent that the caller has not taken yet."""

    call_id: int
    tool: str
    link: WorkerLink
    loop: asyncio.AbstractEventLoop
    on_request: RequestCallback | None = None
    events: deque[Message | WorkerLostError] = field(default_factory=deque)
    waiter: asyncio.Future[None] | None = None
    requests: set[asyncio.Task[None]] = field(default_factory=set)
    finished: bool = False

    def put(self, event: Message | WorkerLostError) -> None:
        self.events.append(event)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> Message | WorkerLostError:
        """The next event, in order; a plain future per wait (cheaper than an ``asyncio.Queue``)."""
        while not self.events:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.events.popleft()


class Router:
    """Owns the ROUTER socket bound at ``endpoint``.

    Callbacks (plain attributes, set by whoever composes the supervisor):
    ``on_ready(link)`` when a worker incarnation becomes routable; ``on_unresponsive(link)`` when one
    misses ``LIVENESS_MISSES`` heartbeats in a row; ``on_catalog_change()`` when the set of tools that
    ``tools()`` lists changed after start-up (a worker with other tools, a runtime failed or back).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        runtimes: list[str],
        max_message_size: int,
        heartbeat_interval: float,
        default_timeout: float = 300.0,
        max_in_flight: int = 256,
        max_queued: int = 1024,
    ) -> None:
        self.endpoint = endpoint
        self.runtimes = list(runtimes)
        self.max_message_size = max_message_size
        self.heartbeat_interval = heartbeat_interval
        self.default_timeout = default_timeout
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self._tool_in_flight: dict[str, int] = {}
        self._tool_limits: dict[str, int] = {}
        self._retry_safe_tools: set[str] = set()
        self._queued = 0
        self._capacity = asyncio.Event()
        self.stats = CallStats()
        self._worker_requests: dict[tuple[bytes, int], asyncio.Task[None]] = {}
        self.on_ready: Callable[[WorkerLink], None] = lambda link: None
        self.on_unresponsive: Callable[[WorkerLink], None] = lambda link: None
        self.on_catalog_change: Callable[[], None] = lambda: None
        self._context = zmq.Context()
        self._socket: AsyncioZmqSocket | None = None
        self._links: dict[bytes, WorkerLink] = {}
        self._expected: dict[int, str] = {}
        self._held: set[int] = set()
        self._pending: dict[int, _Pending] = {}
        self._backstops: set[_Backstop] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._catalogs: dict[str, list[dict[str, Any]]] = {}
        self._tools: dict[str, dict[str, Any]] = {}
        self._load_errors: dict[str, list[str]] = {}
        self._runtime_of: dict[str, str] = {}
        self._runtime_ready = {runtime: asyncio.Event() for runtime in runtimes}
        self._runtime_failed: dict[str, str] = {}
        self._settled = asyncio.Event()
        self.catalog_version = 0
        self._check_settled()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket and start receiving; returns once bound."""
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_size)
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        socket.setsockopt(zmq.SNDHWM, 100_000)
        socket.setsockopt(zmq.RCVHWM, 100_000)
        socket.bind(self.endpoint)
        self._socket = AsyncioZmqSocket(socket, self._on_frames)
        self._socket.start()
        loop = self._loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat_loop()), loop.create_task(self._sweep_backstops())]

    async def aclose(self) -> None:
        """Stop receiving, answer every open call with an error and close the socket; idempotent."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for link in list(self._links.values()):
            self._drop_link(link, "the supervisor is stopping")
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._context.term()

    # -- arbiter interface -------------------------------------------------------------------------

    def expect(self, worker_id: str, pid: int, *, held: bool = False) -> None:
        """Accept a READY from ``worker_id`` only when it comes from ``pid`` (a process just spawned).

        A *held* worker (a replacement candidate) is connected but neither routed to nor merged into the
        catalog until ``promote(pid)``.
        """
        self._expected[pid] = worker_id
        if held:
            self._held.add(pid)

    def promote(self, pid: int) -> None:
        """Start routing to a held worker and take its catalog; a no-op for one that is not held."""
        self._held.discard(pid)
        link = self.link_of(pid)
        if link is not None and link.held:
            link.held = False
            link.draining = False
            self._activate(link)

    def worker_gone(self, pid: int, reason: str) -> None:
        """The arbiter saw process ``pid`` exit: fail its in-flight calls now and stop routing to it."""
        self._expected.pop(pid, None)
        self._held.discard(pid)
        link = self.link_of(pid)
        if link is not None:
            self._drop_link(link, reason)

    def set_runtime_failed(self, runtime: str, reason: str | None) -> None:
        """Mark a runtime failed (calls to it fail fast with ``reason``), or clear the mark with ``None``."""
        if reason is None:
            self._runtime_failed.pop(runtime, None)
        else:
            self._runtime_failed[runtime] = reason
            self._wake(self._runtime_ready[runtime])  # waiters fail fast
        self._rebuild_catalog()
        self._check_settled()

    def drain(self, pid: int) -> None:
        """Route no new call to process ``pid`` and tell it so (DRAIN); its calls in flight go on."""
        link = self.link_of(pid)
        if link is not None and not link.draining:
            link.draining = True
            self._send(link, Drain())
            if not self._routable(link.runtime):
                self._runtime_ready[link.runtime].clear()

    def stop(self, pid: int, reason: str) -> None:
        """Send STOP to process ``pid``; a no-op when it is not connected."""
        link = self.link_of(pid)
        if link is not None:
            self._send(link, Stop(reason))

    def links(self) -> list[WorkerLink]:
        return list(self._links.values())

    def link_of(self, pid: int) -> WorkerLink | None:
        return next((link for link in self._links.values() if link.pid == pid), None)

    # -- catalog -----------------------------------------------------------------------------------

    async def wait_settled(self, timeout: float = READY_WAIT) -> None:
        """Wait (bounded) until every runtime has announced its catalog once or was marked failed."""
        if not self._settled.is_set():
            try:
                await asyncio.wait_for(self._settled.wait(), timeout)
            except TimeoutError:
                pass

    def tools(self) -> list[dict[str, Any]]:
        """The catalog: the tools of every runtime's last READY, but a failed runtime's, sorted by name."""
        return [self._tools[name] for name in sorted(self._tools)]

    def tool(self, name: str) -> dict[str, Any] | None:
        return self._tools.get(name)

    def load_errors(self) -> list[str]:
        """Tool module errors the workers reported, without repeats."""
        seen: dict[str, None] = {}
        for errors in self._load_errors.values():
            seen.update(dict.fromkeys(errors))
        return list(seen)

    def ready_runtimes(self) -> dict[str, bool]:
        return {runtime: bool(self._routable(runtime)) for runtime in self.runtimes}

    def _routable(self, runtime: str) -> list[WorkerLink]:
        return [link for link in self._links.values() if link.runtime == runtime and not link.draining]

    @property
    def queued_calls(self) -> int:
        """Calls waiting for room on a worker now."""
        return self._queued

    def runtime_failures(self) -> dict[str, str]:
        return dict(self._runtime_failed)

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
    ) -> dict[str, Any]:
        """Run ``tool`` on a worker of its runtime and return its ``CallToolResult`` (wire form).

        ``on_progress`` and ``on_log`` are awaited in the caller's task, in the order the worker sent
        them, and always before the result is returned. A request the tool makes is answered in a task
        of its own: ``tools/call`` by the router itself (tool-to-tool), anything else by ``on_request``
        (the client); without ``on_request`` the tool is told the client cannot answer.

        A read-only or idempotent tool whose worker dies during the call is sent once more, to another
        worker of its runtime (the restarted one, if it is the only one), within the same deadline.

        Raises:
            UnknownToolError: no tool of that name in the catalog.
            InvalidArgumentsError: the worker refused the arguments.
            NoWorkerError: no worker of the tool's runtime became ready in time.
            ServerBusyError: admission limits reached (see ``_admit``).
            WorkerLostError: the worker died or stopped while running the call.
            CallTimeoutError: the worker did not answer within ``timeout`` (plus a short margin).

        Cancellation: cancelling the caller sends CANCEL to the worker and forgets the call; it does not
        wait for the worker.
        """
        if not self._settled.is_set():
            await self.wait_settled()
        runtime = self._runtime_of.get(tool)
        if runtime is None or runtime not in self._runtime_ready:
            raise UnknownToolError(f"unknown tool {tool!r}")
        deadline = time.monotonic() + timeout
        callbacks = (on_progress, on_log, on_request)
        started = time.perf_counter()
        outcome = "cancelled"
        loop = self._loop or asyncio.get_running_loop()
        task = asyncio.current_task(loop)  # with the loop: no get_running_loop (a getpid on 3.11)
        assert task is not None
        cancelling = task.cancelling()
        backstop = _Backstop(task, loop.time() + timeout + BACKSTOP_MARGIN)
        self._backstops.add(backstop)
        try:
            try:
                result = await self._attempt(
                    tool, runtime, arguments, deadline, progress_token, meta, *callbacks
                )
            except WorkerLostError as lost:
                if tool not in self._retry_safe_tools:  # ToolMetadata.retry_safe, per catalog
                    raise
                logger.warning("retrying %s once on another worker: %s", tool, lost)
                result = await self._attempt(
                    tool, runtime, arguments, deadline, progress_token, meta, *callbacks
                )
            outcome = "tool_error" if result.get("isError") else "ok"
            return result
        except asyncio.CancelledError:
            if backstop.fired and task.uncancel() <= cancelling:
                outcome = "timeout"
                raise CallTimeoutError(f"tool {tool!r} did not answer within {timeout:g} s") from None
            raise
        except CallError as exc:
            outcome = _OUTCOME_OF.get(type(exc), "protocol_error" if exc.is_protocol_error else "tool_error")
            raise
        finally:
            self._backstops.discard(backstop)
            self.stats.record(tool, runtime, outcome, time.perf_counter() - started)

    async def _attempt(
        self,
        tool: str,
        runtime: str,
        arguments: dict[str, Any] | None,
        deadline: float,
        progress_token: str | int | None,
        meta: dict[str, Any] | None,
        on_progress: ProgressCallback | None,
        on_log: LogCallback | None,
        on_request: RequestCallback | None,
    ) -> dict[str, Any]:
        """One try of ``call`` on one worker: admission, CALL, then the call's events until its answer."""
        link = self._least_loaded(runtime, tool) or await self._admit(runtime, tool, deadline)
        call_id = next(self._ids)
        pending = _Pending(call_id, tool, link, self._loop or asyncio.get_running_loop(), on_request)
        self._pending[call_id] = pending
        link.in_flight.add(call_id)
        self._tool_in_flight[tool] = self._tool_in_flight.get(tool, 0) + 1
        try:
            remaining = max(0.0, deadline - time.monotonic())
            self._send(link, Call(call_id, tool, arguments or {}, remaining, progress_token, meta))
            while True:
                event = await pending.get()
                if isinstance(event, Result):
                    pending.finished = True
                    if event.result.get("isError"):
                        link.calls_failed += 1
                    else:
                        link.calls_served += 1
                    return event.result
                if isinstance(event, Progress):
                    if on_progress is not None:
                        await on_progress(event.progress, event.total, event.message)
                elif isinstance(event, Log):
                    if on_log is not None:
                        await on_log(event.level, event.data, event.logger)
                elif isinstance(event, Request):
                    task = asyncio.create_task(self._answer(pending, event))
                    pending.requests.add(task)
                    task.add_done_callback(pending.requests.discard)
                elif isinstance(event, Error):
                    pending.finished = True
                    link.calls_failed += 1
                    raise error_for_code(event.code, event.message, event.data)
                elif isinstance(event, WorkerLostError):
                    pending.finished = True
                    raise event
        finally:
            for task in list(pending.requests):
                task.cancel()
            self._pending.pop(call_id, None)
            link.in_flight.discard(call_id)
            self._tool_in_flight[tool] -= 1
            if not pending.finished and link.identity in self._links:
                self._send(link, Cancel(call_id, "cancelled by the client"))
            if self._queued:  # calls waiting for room (in _admit)
                self._wake(self._capacity)

    def _least_loaded(self, runtime: str, tool: str) -> WorkerLink | None:
        """``_admit`` without waiting: the least-loaded routable worker of ``runtime`` with room for a call
        of ``tool``, or None (none is ready, none has room, or calls are already waiting for room)."""
        if self._queued or runtime in self._runtime_failed or not self._tool_has_room(tool):
            return None  # those waiting go first
        return self._open_link(runtime)

    def _open_link(self, runtime: str) -> WorkerLink | None:
        """The routable worker of ``runtime`` with the fewest calls in flight, if one has room for another."""
        best: WorkerLink | None = None
        for link in self._links.values():
            if (
                link.runtime == runtime
                and not link.draining
                and len(link.in_flight) < self.max_in_flight
                and (best is None or len(link.in_flight) < len(best.in_flight))
            ):
                best = link
        return best

    def _tool_has_room(self, tool: str) -> bool:
        """Whether ``tool`` is under its ``max_concurrency`` (if it has one)."""
        limit = self._tool_limits.get(tool)
        return limit is None or self._tool_in_flight.get(tool, 0) < limit

    async def _admit(self, runtime: str, tool: str, deadline: float) -> WorkerLink:
        """The least-loaded ready worker of ``runtime`` with room for one more call of ``tool``.

        Waits (bounded by ``deadline``) for a worker to become ready or for room to free up; at most
        ``max_queued_calls`` calls wait for room at once.

        Raises:
            NoWorkerError: the runtime is failed, or no worker of it became ready in time.
            ServerBusyError: too many calls are waiting already, or no room freed up before the deadline.
        """
        queued = False
        try:
            while True:
                failure = self._runtime_failed.get(runtime)
                if failure is not None:
                    raise NoWorkerError(f"runtime {runtime} is unavailable: {failure}")
                if self._routable(runtime):
                    link = self._open_link(runtime)
                    tool_has_room = self._tool_has_room(tool)
                    if link is not None and tool_has_room:
                        return link
                    if not queued:
                        if self._queued >= self.max_queued:
                            raise ServerBusyError(self._busy_reason(runtime, tool, tool_has_room))
                        self._queued += 1
                        queued = True
                    event, wait = self._capacity, deadline - time.monotonic()
                    if wait <= 0:
                        raise ServerBusyError(self._busy_reason(runtime, tool, tool_has_room))
                else:
                    event, wait = self._runtime_ready[runtime], min(deadline - time.monotonic(), READY_WAIT)
                    event.clear()  # set only while a routable worker exists; there is none now
                    if wait <= 0:
                        raise NoWorkerError(f"no {runtime} worker is ready")
                try:
                    await asyncio.wait_for(event.wait(), wait)
                except TimeoutError:
                    if event is self._capacity:
                        raise ServerBusyError(self._busy_reason(runtime, tool, tool_has_room)) from None
                    raise NoWorkerError(f"no {runtime} worker became ready within {READY_WAIT:g} s") from None
        finally:
            if queued:
                self._queued -= 1

    def _busy_reason(self, runtime: str, tool: str, tool_has_room: bool) -> str:
        if not tool_has_room:
            return (
                f"server busy: tool {tool!r} allows {self._tool_limits[tool]} concurrent calls "
                f"(max_concurrency) and {self._queued} calls are waiting; try again later"
            )
        return (
            f"server busy: every {runtime} worker has {self.max_in_flight} calls in flight "
            f"and {self._queued} calls are waiting; try again later"
        )

    async def _answer(self, pending: _Pending, request: Request) -> None:
        """Answer one request of a running tool with a REPLY; never raises (but may be cancelled)."""
        try:
            if request.method == "tools/call":
                result = await self._call_for_tool(request.params)
            elif pending.on_request is not None:
                result = await pending.on_request(request.method, request.params)
            else:
                raise ClientRequestError(f"{request.method} cannot reach a client from here")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._send(pending.link, Reply(request.request_id, None, error_object(exc)))
            return
        self._send(pending.link, Reply(request.request_id, result, None))

    def _start_worker_request(self, link: WorkerLink, request: Request) -> None:
        key = (link.identity, request.request_id)
        task = asyncio.create_task(self._answer_worker(link, request))
        self._worker_requests[key] = task
        task.add_done_callback(lambda _: self._worker_requests.pop(key, None))

    async def _answer_worker(self, link: WorkerLink, request: Request) -> None:
        """Answer a request a worker made on its own behalf (the task queue); never raises (but may be
        cancelled by a REQUEST_CANCEL, which cancels the tool call it runs)."""
        try:
            if request.method == "tools/call":

                async def forward(progress: float, total: float | None, message: str | None) -> None:
                    self._send(link, RequestProgress(request.request_id, progress, total, message))

                result = await self._call_for_tool(request.params, on_progress=forward)
            elif request.method == "supervisor/tools":
                result = {
                    "tools": {
                        name: {**entry, "pool": self._runtime_of.get(name)}
                        for name, entry in self._tools.items()
                    }
                }
            elif request.method == "supervisor/workers":
                result = {"workers": [self._describe(other) for other in self._links.values()]}
            else:
                raise ClientRequestError(f"unknown request {request.method!r}", METHOD_NOT_FOUND)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._send(link, Reply(request.request_id, None, error_object(exc)))
            return
        self._send(link, Reply(request.request_id, result, None))

    @staticmethod
    def _describe(link: WorkerLink) -> dict[str, Any]:
        return {
            "id": link.worker_id,
            "runtime": link.runtime,
            "pid": link.pid,
            "state": "draining" if link.draining else "ready",
            "tools": [entry["name"] for entry in link.catalog],
            "in_flight": len(link.in_flight),
        }

    async def _call_for_tool(
        self, params: dict[str, Any], on_progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """A tool-to-tool call: a CallError becomes the caller's ClientRequestError."""
        name = params.get("name")
        arguments = params.get("arguments")
        timeout = params.get("timeout")
        if not isinstance(name, str) or not isinstance(arguments, (dict, type(None))):
            raise ClientRequestError("tools/call needs a tool name and an arguments object", INVALID_PARAMS)
        try:
            return await self.call(
                name,
                arguments,
                timeout=float(timeout) if timeout is not None else self.default_timeout,
                on_progress=on_progress,
            )
        except CallError as exc:
            result = call_error_result(exc)
            if result is None:
                raise ClientRequestError(**error_object(exc)) from None
            return result

    # -- socket ------------------------------------------------------------------------------------

    def _send(self, link: WorkerLink, message: Message) -> None:
        self._send_raw(link.identity, message)

    def _send_raw(self, identity: bytes, message: Message) -> None:
        """Queue a frame to a worker; never blocks, never raises.

        A send to a peer that is gone fails (ROUTER_MANDATORY) and is only logged at debug level: the
        arbiter reports the exit and answers the calls that worker held.
        """
        if self._socket is None:
            return
        try:
            self._socket.send([identity, encode(message)])
        except zmq.ZMQError as exc:
            logger.debug("cannot send to %s: %s", identity.decode(errors="replace"), exc)

    def _on_frames(self, frames: list[bytes]) -> None:
        """One message from a worker (identity, frame); a message that cannot be handled is logged and
        dropped by the socket adapter, never allowed to stop receiving."""
        if len(frames) != 2:
            logger.warning("dropping a message of %d frames", len(frames))
            return
        self._dispatch(frames[0], frames[1])

    def _dispatch(self, identity: bytes, frame: bytes) -> None:
        try:
            message = decode(frame)
        except ProtocolError as exc:
            logger.error("dropping a frame from %s: %s", identity.decode(errors="replace"), exc)
            return
        link = self._links.get(identity)
        if link is None:
            if isinstance(message, Ready):
                self._on_ready_message(identity, message)
            return
        link.last_heard = time.monotonic()
        if isinstance(message, (Result, Error)):
            pending = self._pending.get(message.call_id)
            if pending is not None and pending.link is link:
                link.in_flight.discard(message.call_id)
                pending.put(message)
        elif isinstance(message, Request) and message.call_id == 0:
            self._start_worker_request(link, message)
        elif isinstance(message, RequestCancel):
            task = self._worker_requests.get((link.identity, message.request_id))
            if task is not None:
                task.cancel()
        elif isinstance(message, (Progress, Log, Request)):
            pending = self._pending.get(message.call_id)
            if pending is not None and pending.link is link:
                pending.put(message)
            elif isinstance(message, Request):
                self._send(
                    link,
                    Reply(message.request_id, None, {"code": INTERNAL_ERROR, "message": "the call is over"}),
                )
        elif not isinstance(message, Heartbeat):
            logger.warning("ignoring unexpected %s from %s", type(message).__name__, link.worker_id)

    def _on_ready_message(self, identity: bytes, message: Ready) -> None:
        try:
            check_ready(message)
            _check_catalog(message)
        except ProtocolError as exc:
            logger.error("%s", exc)
            self._send_raw(identity, Stop(f"refused: {exc}"))
            return
        if message.pool not in self._runtime_ready:
            logger.error("refusing READY from %s: pool %r is not served here", message.worker_id, message.pool)
            self._send_raw(identity, Stop(f"refused: pool {message.pool!r} is not served here"))
            return
        if self._expected.get(message.pid) != message.worker_id:
            logger.warning(
                "refusing READY from %s pid %d: not the process the arbiter started",
                message.worker_id,
                message.pid,
            )
            self._send_raw(identity, Stop("refused: unexpected worker"))
            return
        link = WorkerLink(
            message.worker_id,
            message.pool,
            message.pid,
            identity,
            message.catalog,
            message.load_errors,
            message.elsewhere,
        )
        self._links[identity] = link
        for error in message.load_errors:
            logger.error("%s reported: %s", message.worker_id, error)
        if message.pid in self._held:
            link.held = link.draining = True
        else:
            self._activate(link)
        self.on_ready(link)

    def _activate(self, link: WorkerLink) -> None:
        """Make a connected worker routable and its catalog the catalog of its runtime."""
        self._catalogs[link.runtime] = link.catalog
        self._load_errors[link.runtime] = list(link.load_errors)
        self._runtime_of.update(link.elsewhere)
        self._runtime_of.update((entry["name"], link.runtime) for entry in link.catalog)
        self._rebuild_catalog()
        self._runtime_failed.pop(link.runtime, None)
        self._runtime_ready[link.runtime].set()
        self._check_settled()

    def _drop_link(self, link: WorkerLink, reason: str) -> None:
        self._links.pop(link.identity, None)
        # the calls this worker made on its own behalf (the task queue's) die with it, so that a task
        # recovered by its next incarnation can never run twice at once
        for (identity, _), task in list(self._worker_requests.items()):
            if identity == link.identity:
                task.cancel()
        error = WorkerLostError(reason)
        for call_id in list(link.in_flight):
            pending = self._pending.get(call_id)
            if pending is not None:
                pending.put(error)
        link.in_flight.clear()
        if not self._routable(link.runtime):
            self._runtime_ready[link.runtime].clear()

    def _rebuild_catalog(self) -> None:
        """The listed tools: the last catalog of every runtime that is not marked failed."""
        tools: dict[str, dict[str, Any]] = {}
        for runtime in self.runtimes:
            if runtime in self._runtime_failed:
                continue
            for entry in self._catalogs.get(runtime, []):
                tools.setdefault(entry["name"], entry)
        if tools == self._tools:
            return
        self._tools = tools
        metadata = {name: ToolMetadata(**entry["metadata"]) for name, entry in tools.items()}
        self._tool_limits = {name: m.max_concurrency for name, m in metadata.items() if m.max_concurrency}
        self._retry_safe_tools = {name for name, m in metadata.items() if m.retry_safe}
        self.catalog_version += 1
        if self._settled.is_set():
            self.on_catalog_change()

    @staticmethod
    def _wake(event: asyncio.Event) -> None:
        """Wake everyone waiting on ``event`` now, leaving it unset for the next waiters."""
        event.set()
        event.clear()

    def _check_settled(self) -> None:
        if all(runtime in self._catalogs or runtime in self._runtime_failed for runtime in self.runtimes):
            self._settled.set()

    async def _sweep_backstops(self) -> None:
        """Cancel every call past its backstop, each ``SWEEP_INTERVAL``; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = loop.time()
            for backstop in list(self._backstops):
                if not backstop.fired and now >= backstop.at:
                    backstop.fired = True
                    backstop.task.cancel()

    async def _heartbeat_loop(self) -> None:
        """Send a heartbeat to every worker each interval and report the ones that went silent.

        A tick that itself ran late (the supervisor was too busy to listen) gives every worker the
        benefit of the doubt instead of declaring healthy workers dead.
        """
        interval = self.heartbeat_interval
        window = interval * LIVENESS_MISSES
        last_tick = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            late = now - last_tick > interval * 2
            last_tick = now
            for link in list(self._links.values()):
                if late:
                    link.last_heard = max(link.last_heard, now - interval)
                elif now - link.last_heard > window:
                    if not link.silent:  # report once; the arbiter kills it and worker_gone drops it
                        logger.error(
                            "%s (pid %d) missed %d heartbeats", link.worker_id, link.pid, LIVENESS_MISSES
                        )
                        link.silent = True
                        self.drain(link.pid)
                        self.on_unresponsive(link)
                    continue
                self._send(link, Heartbeat(len(link.in_flight)))


def _check_catalog(message: Ready) -> None:
    """Refuse a READY whose catalog the router could not use."""
    if not isinstance(message.catalog, list) or not isinstance(message.elsewhere, dict):
        raise ProtocolError(f"READY from {message.worker_id}: catalog must be a list and elsewhere a map")
    for entry in message.catalog:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("inputSchema"), dict)
            or not isinstance(entry.get("metadata"), dict)
        ):
            raise ProtocolError(f"READY from {message.worker_id}: malformed catalog entry {str(entry)[:200]}")
        try:
            ToolMetadata(**entry["metadata"])
        except (TypeError, ToolDefinitionError) as exc:
            raise ProtocolError(
                f"READY from {message.worker_id}: bad metadata of {entry['name']!r}: {exc}"
            ) from None
