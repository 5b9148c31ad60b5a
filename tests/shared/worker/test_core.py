"""Tests of shared/worker/core.py: ``WorkerCore`` over a fake ``Loop`` — frames in, frames and loop
primitives out.

Requests wait on the event loop, so those tests run on both runtimes (the fake's waiter is an anyio event).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from shared.errors import INPUT_PENDING, ClientRequestError, InputRequired
from shared.launch import EXIT_OK, EXIT_ORPHANED, EXIT_PROTOCOL, WorkerOptions
from shared.metadata import ToolMetadataRegistry, tool_metadata
from shared.protocol import (
    LIVENESS_MISSES,
    ORPHAN_MISSES,
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
    Stop,
    decode,
    encode,
)
from shared.schema import build_tool_spec
from shared.worker import PreparedCall, ToolHost, WorkerCore
from shared.worker.core import Loop

BACKENDS = ["asyncio", "trio"]


class FakeHandle:
    """A running call's handle that counts its cancellations."""

    def __init__(self) -> None:
        self.cancels = 0

    def cancel(self) -> None:
        self.cancels += 1


class FakeWaiter:
    """A one-shot waiter on whichever loop anyio runs."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._value: Reply | None = None

    def set(self, value: Reply) -> None:
        self._value = value
        self._event.set()

    async def wait(self) -> Reply:
        await self._event.wait()
        assert self._value is not None
        return self._value


class FakeLoop:
    """A ``Loop`` that records what the core asks of it."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.started: list[PreparedCall] = []
        self.exits: list[int] = []
        self.soon: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(decode(frame))

    def start_call(self, call: PreparedCall) -> None:
        self.started.append(call)

    def new_waiter(self) -> FakeWaiter:
        return FakeWaiter()

    def request_exit(self, code: int) -> None:
        self.exits.append(code)

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: Any) -> None:
        self.soon.append((fn, args))


def make_core(registry: ToolMetadataRegistry) -> tuple[WorkerCore[FakeHandle], FakeLoop]:
    @tool_metadata(runtime="asyncio", registry=registry)
    async def core_echo(text: str) -> str:
        return text

    host = ToolHost("asyncio-0", "asyncio", ["unused"], 1 << 20)
    metadata = registry.get("core_echo")
    assert metadata is not None
    host.tools["core_echo"] = build_tool_spec(core_echo, metadata)
    options = WorkerOptions(
        worker_id="asyncio-0",
        runtime="asyncio",
        router="inproc://unused",
        parent_pid=os.getppid(),
        pool="asyncio",
        heartbeat_interval=1.0,
    )
    loop = FakeLoop()
    typed: Loop = loop  # the fake is a Loop: mypy checks it here
    return WorkerCore(options, host, typed), loop


@pytest.fixture
def core(registry: ToolMetadataRegistry) -> tuple[WorkerCore[FakeHandle], FakeLoop]:
    return make_core(registry)


Core = tuple[WorkerCore[FakeHandle], FakeLoop]


# -- dispatch --------------------------------------------------------------------------------------


def test_a_call_is_prepared_and_started_on_the_loop(core: Core) -> None:
    worker, loop = core
    worker.handle(encode(Call(7, "core_echo", {"text": "hi"}, 2.0, None, None)))
    assert [(c.call_id, c.spec.name, c.kwargs, c.timeout) for c in loop.started] == [
        (7, "core_echo", {"text": "hi"}, 2.0)
    ]
    assert loop.sent == []


def test_a_call_that_cannot_start_is_answered_with_an_error_and_not_started(core: Core) -> None:
    worker, loop = core
    worker.handle(encode(Call(8, "nope", {}, None, None, None)))
    worker.handle(encode(Call(9, "core_echo", {"text": 3}, None, None, None)))
    assert loop.started == []
    assert [(m.call_id, m.code) for m in loop.sent if isinstance(m, Error)] == [(8, -32602), (9, -32602)]


def test_cancel_cancels_the_running_call_and_records_it(core: Core) -> None:
    worker, _ = core
    handle = FakeHandle()
    worker.running[5] = handle
    worker.handle(encode(Cancel(5, "client cancelled")))
    assert handle.cancels == 1
    assert worker.cancelled == {5}


def test_cancel_of_a_call_that_already_ended_does_nothing(core: Core) -> None:
    worker, loop = core
    worker.handle(encode(Cancel(5, "client cancelled")))
    assert worker.cancelled == set()
    assert loop.sent == [] and loop.exits == []


@pytest.mark.parametrize(
    ("reason", "code"),
    [("refused: protocol version 2, expected 3", EXIT_PROTOCOL), ("supervisor shutting down", EXIT_OK)],
)
def test_stop_asks_the_loop_to_exit_with_the_code_its_reason_calls_for(
    core: Core, reason: str, code: int
) -> None:
    worker, loop = core
    worker.handle(encode(Stop(reason)))
    assert loop.exits == [code]


def test_drain_is_remembered_and_told_once_to_the_services(core: Core) -> None:
    worker, _ = core
    told: list[str] = []
    worker.on_drain.append(lambda: told.append("drained"))
    worker.handle(encode(Drain()))
    worker.handle(encode(Drain()))
    assert worker.draining and told == ["drained"]


def test_an_undecodable_frame_is_dropped_and_logged(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    worker, loop = core
    worker.handle(b"\xc1 not msgpack")
    assert loop.sent == [] and loop.started == [] and loop.exits == []
    assert "dropping a frame from the router" in caplog.text


def test_a_frame_the_worker_should_never_get_is_ignored(core: Core, caplog: pytest.LogCaptureFixture) -> None:
    worker, loop = core
    worker.handle(encode(Log(1, "info", "a worker's frame", None)))
    assert loop.sent == [] and loop.exits == []
    assert "ignoring unexpected Log frame" in caplog.text


def test_ready_frame_announces_the_host(core: Core) -> None:
    worker, _ = core
    ready = decode(worker.ready_frame())
    assert isinstance(ready, Ready) and ready.worker_id == "asyncio-0"
    assert worker.announced


# -- emit ------------------------------------------------------------------------------------------


def test_emit_on_the_loop_thread_sends_at_once(core: Core) -> None:
    worker, loop = core
    worker.mark_loop_thread()
    worker.emit(Heartbeat(0))
    assert loop.sent == [Heartbeat(0)] and loop.soon == []


def test_emit_from_another_thread_goes_through_call_soon_threadsafe(core: Core) -> None:
    worker, loop = core
    worker.mark_loop_thread()
    thread = threading.Thread(target=worker.emit, args=(Heartbeat(1),))
    thread.start()
    thread.join()
    assert loop.sent == []
    [(fn, args)] = loop.soon
    fn(*args)
    assert loop.sent == [Heartbeat(1)]


# -- heartbeats ------------------------------------------------------------------------------------


def test_heartbeat_reports_the_calls_in_flight(core: Core) -> None:
    worker, loop = core
    worker.running[1] = FakeHandle()
    worker.running[2] = FakeHandle()
    assert worker.heartbeat()
    assert loop.sent == [Heartbeat(2)]


def test_heartbeat_after_a_silent_orphan_window_is_false_and_sends_nothing(core: Core) -> None:
    worker, loop = core
    worker.last_heard = time.monotonic() - worker.options.heartbeat_interval * ORPHAN_MISSES - 0.1
    assert not worker.heartbeat()
    assert loop.sent == []


def test_a_router_silent_as_long_as_the_routers_liveness_window_is_not_yet_left(core: Core) -> None:
    worker, loop = core
    worker.last_heard = time.monotonic() - worker.options.heartbeat_interval * LIVENESS_MISSES - 0.1
    assert worker.heartbeat()
    assert loop.sent == [Heartbeat(0)]


def test_any_frame_from_the_router_keeps_the_worker_alive(core: Core) -> None:
    worker, loop = core
    worker.last_heard = time.monotonic() - worker.options.heartbeat_interval * ORPHAN_MISSES - 0.1
    worker.handle(encode(Heartbeat(0)))
    assert worker.heartbeat()


def test_heartbeat_is_false_when_the_supervisor_is_gone(registry: ToolMetadataRegistry) -> None:
    worker, loop = make_core(registry)
    worker.options = WorkerOptions(
        worker_id="asyncio-0", runtime="asyncio", router="inproc://x", parent_pid=os.getpid(), pool="asyncio"
    )  # not this process's parent
    assert not worker.heartbeat()
    assert loop.sent == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_heartbeats_beats_until_the_router_is_silent_then_exits_orphaned(
    core: Core, backend: str
) -> None:
    worker, loop = core
    beats: list[float] = []

    async def sleep(seconds: float) -> None:
        beats.append(seconds)
        if len(beats) == 3:
            worker.last_heard = -1e9

    anyio.run(worker.serve_heartbeats, sleep, backend=backend)
    assert beats == [1.0, 1.0, 1.0]
    assert loop.sent == [Heartbeat(0)] * 3
    assert loop.exits == [EXIT_ORPHANED]


# -- requests --------------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate()`` holds (each test bounds the wait with ``fail_after``)."""
    while not predicate():
        await anyio.sleep(0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_request_made_before_ready_is_held_until_ready_is_out(core: Core, backend: str) -> None:
    worker, loop = core
    answers: list[dict[str, Any]] = []

    async def main() -> None:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:

                async def ask() -> None:
                    answers.append(await worker.request(0, "supervisor/tools", {}))

                tasks.start_soon(ask)
                for _ in range(10):
                    await anyio.sleep(0)
                assert loop.sent == []  # held: the router would ignore it before READY
                loop.sent.append(decode(worker.ready_frame()))
                await wait_until(lambda: len(loop.sent) == 2)
                request = loop.sent[1]
                assert isinstance(request, Request)
                assert (request.call_id, request.method, request.params) == (0, "supervisor/tools", {})
                worker.handle(encode(Reply(request.request_id, {"tools": {}}, None)))

    anyio.run(main, backend=backend)
    assert [type(m) for m in loop.sent] == [Ready, Request]
    assert answers == [{"tools": {}}]
    assert worker.waiting == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_error_reply_raises_client_request_error(core: Core, backend: str) -> None:
    worker, loop = core
    worker.ready_frame()

    async def main() -> None:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:

                async def ask() -> None:
                    with pytest.raises(ClientRequestError) as raised:
                        await worker.request(3, "sampling/createMessage", {})
                    assert (raised.value.code, str(raised.value)) == (-32600, "no sampling")

                tasks.start_soon(ask)
                await wait_until(lambda: bool(loop.sent))
                request = loop.sent[0]
                assert isinstance(request, Request)
                worker.handle(
                    encode(Reply(request.request_id, None, {"code": -32600, "message": "no sampling"}))
                )

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_input_pending_reply_raises_input_required(core: Core, backend: str) -> None:
    worker, loop = core
    worker.ready_frame()

    async def main() -> None:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:

                async def ask() -> None:
                    with pytest.raises(InputRequired) as raised:
                        await worker.request(3, "roots/list", {})
                    assert raised.value.code == INPUT_PENDING

                tasks.start_soon(ask)
                await wait_until(lambda: bool(loop.sent))
                request = loop.sent[0]
                assert isinstance(request, Request)
                worker.handle(
                    encode(Reply(request.request_id, None, {"code": INPUT_PENDING, "message": "asked"}))
                )

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_request_progress_reaches_its_callback(core: Core, backend: str) -> None:
    worker, loop = core
    worker.ready_frame()
    progress: list[tuple[float, float | None, str | None]] = []

    async def main() -> None:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:

                async def ask() -> None:
                    await worker.request(0, "tools/call", {}, on_progress=lambda *p: progress.append(p))

                tasks.start_soon(ask)
                await wait_until(lambda: bool(loop.sent))
                request = loop.sent[0]
                assert isinstance(request, Request)
                worker.handle(encode(RequestProgress(request.request_id, 1, 4, "a quarter")))
                worker.handle(encode(Reply(request.request_id, {}, None)))

    anyio.run(main, backend=backend)
    assert progress == [(1, 4, "a quarter")]
    assert worker.request_progress == {}


@pytest.mark.parametrize(("backend", "call_id"), [(b, c) for b in BACKENDS for c in (0, 7)])
def test_a_cancelled_request_is_forgotten_and_the_workers_own_is_cancelled_at_the_router(
    core: Core, backend: str, call_id: int
) -> None:
    worker, loop = core
    worker.ready_frame()

    async def main() -> None:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(worker.request, call_id, "tools/call", {})
                await wait_until(lambda: bool(loop.sent))
                tasks.cancel_scope.cancel()

    anyio.run(main, backend=backend)
    request = loop.sent[0]
    assert isinstance(request, Request)
    # a tool's own request ends with its call (the router forgets it); the worker's own must be cancelled
    assert loop.sent[1:] == ([RequestCancel(request.request_id)] if call_id == 0 else [])
    assert worker.waiting == {}
    worker.handle(encode(Reply(request.request_id, {}, None)))  # a late answer is dropped


@pytest.mark.parametrize("backend", BACKENDS)
def test_issue_17_a_request_over_max_message_size_fails_at_once_and_is_not_sent(
    core: Core, backend: str
) -> None:
    """A workflow step's 32 MB input went out as a worker's own REQUEST; the router's socket dropped the
    frame unseen and the step stayed running. Now the request fails before anything is sent."""
    worker, loop = core
    worker.ready_frame()
    limit = worker.options.max_message_size

    async def main() -> None:
        with anyio.fail_after(5):
            with pytest.raises(ClientRequestError, match=r"the tools/call request for 'step' would take"):
                await worker.request(0, "tools/call", {"name": "step", "arguments": {"blob": "x" * limit}})

    anyio.run(main, backend=backend)
    assert loop.sent == [] and worker.waiting == {}


def test_issue_17_a_frame_over_max_message_size_is_never_emitted(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    """The router's socket drops such a frame and the worker's connection with it; a LOG says so instead,
    anything else is logged by the worker."""
    worker, loop = core
    worker.mark_loop_thread()
    huge = "x" * worker.options.max_message_size
    worker.emit(Log(7, "info", "tool", huge))
    worker.emit(Progress(7, 1.0, None, huge))
    [sent] = loop.sent
    assert isinstance(sent, Log) and (sent.call_id, sent.level, sent.logger) == (7, "warning", "tool")
    assert sent.data.startswith("a log message was not sent: the LOG frame would take ")
    assert "not sent: the PROGRESS frame would take" in caplog.text
