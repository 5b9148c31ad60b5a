"""Tests of trio_worker/worker.py: the real ``TrioWorker`` in this process, behind a bare ROUTER of the
test's over real ZeroMQ (inproc://, so that frames sent together are read in one round by the worker).

They pin what its reader does (the module docstring): the first call of a read runs in the reading task,
which carries on reading after a call that did not suspend and hands the socket over to a new reader when a
call suspends; every call still has its own context, deadline and cancellation. Nothing sleeps to
synchronise: each step waits for the frames the worker sends.
"""

from __future__ import annotations

import contextvars
import itertools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
import trio
import trio.testing
import zmq

from shared.launch import WorkerOptions
from shared.metadata import ToolMetadataRegistry, tool_metadata
from shared.protocol import Call, Cancel, Heartbeat, Message, Ready, Result, Threads, decode, encode
from shared.schema import build_tool_spec
from shared.worker import ToolHost
from shared.zmqio.core import connect_dealer
from trio_worker import TrioWorker

DEADLINE = 10.0
_names = itertools.count()
variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="unset")


class Router:
    """The test's ROUTER, read on the test's Trio loop; ``recv`` skips heartbeats and THREADS."""

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self.identity = b""
        self._fd = cast(int, socket.getsockopt(zmq.FD))

    def send(self, message: Message) -> None:
        self.socket.send_multipart([self.identity, encode(message)], zmq.NOBLOCK)

    async def recv(self) -> Message:
        while True:
            while not cast(int, self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                await trio.lowlevel.wait_readable(self._fd)
            identity, frame = self.socket.recv_multipart(zmq.NOBLOCK)
            self.identity = identity
            message = decode(frame)
            if not isinstance(message, (Heartbeat, Threads)):
                return message

    async def next_result(self) -> Result:
        message = await self.recv()
        assert isinstance(message, Result), message
        return message

    async def answer(self, call_id: int) -> Any:
        """The RESULT of ``call_id``, which must be the next frame."""
        message = await self.next_result()
        assert message.call_id == call_id, message
        return message.result


def text(result: dict[str, Any]) -> str:
    assert not result["isError"], result
    return cast(str, result["content"][0]["text"])


class Tools:
    """The tools the worker serves, and what they record."""

    def __init__(self, registry: ToolMetadataRegistry) -> None:
        self.tasks: list[trio.lowlevel.Task] = []
        self.release = trio.Event()
        self.then: Callable[[], object] = lambda: None
        """What ``run_then`` does before it returns."""

        @tool_metadata(runtime="trio", registry=registry)
        async def in_task() -> str:
            """Record the task it runs in."""
            self.tasks.append(trio.lowlevel.current_task())
            return "ok"

        @tool_metadata(runtime="trio", registry=registry)
        async def run_then() -> str:
            """Call ``then`` and return, without a checkpoint."""
            self.then()
            return "ok"

        @tool_metadata(runtime="trio", registry=registry)
        async def set_variable(value: str) -> str:
            """Set the context variable; return what it was."""
            before = variable.get()
            variable.set(value)
            return before

        @tool_metadata(runtime="trio", registry=registry)
        async def wait_for_release() -> str:
            """Suspend until ``release`` is set."""
            self.tasks.append(trio.lowlevel.current_task())
            await self.release.wait()
            return "released"

        @tool_metadata(runtime="trio", registry=registry)
        async def release_waiter() -> str:
            """Set ``release``."""
            self.release.set()
            return "ok"

        @tool_metadata(runtime="trio", registry=registry)
        async def deadline_left() -> float:
            """Seconds to the effective deadline, seen from the call's first step."""
            return trio.current_effective_deadline() - trio.current_time()

        @tool_metadata(runtime="trio", registry=registry)
        async def checkpoint_once() -> str:
            """Pass one checkpoint (where a cancelled scope would end the call)."""
            await trio.lowlevel.checkpoint()
            return "ok"

        @tool_metadata(runtime="trio", registry=registry)
        async def sleep_long() -> str:
            """Sleep far past any deadline the tests give."""
            await trio.sleep(60)
            return "never"

        self.functions: list[Callable[..., Any]] = [
            in_task, run_then, set_variable, wait_for_release, release_waiter, deadline_left, checkpoint_once, sleep_long
        ]  # fmt: skip
        self.registry = registry


@asynccontextmanager
async def running_worker(tools: Tools) -> AsyncIterator[tuple[Router, TrioWorker]]:
    """A ``TrioWorker`` serving ``tools`` on this loop, READY received; stopped and its context ended on
    exit."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"inproc://trio-worker-test-{next(_names)}"
    router_socket = context.socket(zmq.ROUTER)
    router_socket.setsockopt(zmq.LINGER, 0)
    router_socket.bind(endpoint)
    host = ToolHost("trio-0", "trio", ["unused"], 1 << 20)
    for function in tools.functions:
        metadata = tools.registry.get(function.__name__)
        assert metadata is not None
        host.tools[function.__name__] = build_tool_spec(function, metadata)
    options = WorkerOptions(
        worker_id="trio-0",
        runtime="trio",
        router=endpoint,
        parent_pid=os.getppid(),
        pool="trio",
        heartbeat_interval=60.0,
    )
    worker = TrioWorker(options, host, connect_dealer(context, endpoint, b"trio-0/1", 1 << 20))
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.serve)
            router = Router(router_socket)
            assert isinstance(await router.recv(), Ready)
            try:
                yield router, worker
            finally:
                router_socket.close(linger=0)  # before the worker's serve terminates the shared context
                worker.request_exit(0)


@pytest.fixture
def tools(registry: ToolMetadataRegistry) -> Tools:
    return Tools(registry)


def call(call_id: int, tool: str, timeout: float | None = None, **arguments: Any) -> Call:
    return Call(call_id, tool, arguments, timeout, None, None)


def test_calls_that_do_not_suspend_run_one_after_another_in_the_reading_task(tools: Tools) -> None:
    async def main() -> None:
        async with running_worker(tools) as (router, worker):
            for n in range(1, 51):
                router.send(call(n, "in_task", timeout=5.0))
                assert text(await router.answer(n)) == "ok"
            assert worker.running == {} and worker.core.cancelled == set()

    trio.run(main)
    assert len(set(map(id, tools.tasks))) == 1  # no task spawned per call


def test_each_call_has_a_context_of_its_own(tools: Tools) -> None:
    async def main() -> None:
        async with running_worker(tools) as (router, _):
            for n, value in enumerate(["a", "b", "c"], 1):
                router.send(call(n, "set_variable", value=value))
                assert text(await router.answer(n)) == "unset"

    trio.run(main)


def test_a_call_that_suspends_hands_the_socket_to_a_new_reader(tools: Tools) -> None:
    async def main() -> None:
        async with running_worker(tools) as (router, worker):
            router.send(call(1, "wait_for_release"))
            await trio.testing.wait_all_tasks_blocked()  # call 1 suspended; a new reader waits
            for n in range(2, 12):  # answered while call 1 waits
                router.send(call(n, "in_task"))
                assert text(await router.answer(n)) == "ok"
            assert list(worker.running) == [1]
            router.send(call(12, "release_waiter"))
            assert {(await router.next_result()).call_id for _ in range(2)} == {1, 12}
            router.send(call(13, "in_task"))
            assert text(await router.answer(13)) == "ok"
            assert worker.running == {}

    trio.run(main)
    waiter, *others = tools.tasks
    assert waiter not in others  # the suspended call kept its task; the others ran in the next reader
    assert len(set(map(id, others))) == 1


def test_a_call_sees_its_deadline_from_its_first_step(tools: Tools) -> None:
    async def main() -> None:
        async with running_worker(tools) as (router, _):
            router.send(call(1, "deadline_left", timeout=DEADLINE / 2))
            assert 0 < float(text(await router.answer(1))) <= DEADLINE / 2
            router.send(call(2, "deadline_left"))  # not the last call's: only the test's own (fail_after)
            assert float(text(await router.answer(2))) > DEADLINE / 2

    trio.run(main)


def test_a_deadline_answers_with_a_timeout_and_the_reader_goes_on(tools: Tools) -> None:
    async def main() -> None:
        async with running_worker(tools) as (router, worker):
            router.send(call(1, "sleep_long", timeout=0.05))
            result = await router.answer(1)
            assert result["isError"] and "timed out after 0.05 s" in result["content"][0]["text"]
            router.send(call(2, "in_task", timeout=0.05))
            assert text(await router.answer(2)) == "ok"
            await trio.sleep(0.2)  # the scenario: idle for longer than the last call's deadline
            router.send(call(3, "in_task"))
            assert text(await router.answer(3)) == "ok"
            assert worker.running == {} and worker.core.cancelled == set()

    trio.run(main)


def test_cancel_read_with_its_call_cancels_that_call_only(tools: Tools) -> None:
    """CALL, CANCEL of it and another CALL arrive in one read: the first call, run by the reader in the
    scope it waited in, is cancelled and answers nothing; the next call runs; the reader's next scope is
    a fresh one."""

    async def main() -> None:
        async with running_worker(tools) as (router, worker):
            router.send(call(1, "wait_for_release"))
            router.send(Cancel(1, "the client cancelled"))
            router.send(call(2, "in_task"))
            assert text(await router.answer(2)) == "ok"
            for n in range(3, 6):
                router.send(call(n, "in_task", timeout=5.0))
                assert text(await router.answer(n)) == "ok"
            assert worker.running == {} and worker.core.cancelled == set()

    trio.run(main)


def test_a_call_cancelled_in_its_read_that_ends_without_suspending_leaves_no_cancelled_scope(
    tools: Tools,
) -> None:
    """The cancelled call finishes without a checkpoint (and answers nothing); the next call, already waiting
    when the reader reads again, must not run in the scope CANCEL cancelled."""

    async def main() -> None:
        async with running_worker(tools) as (router, worker):
            tools.then = lambda: router.send(call(2, "checkpoint_once"))  # sent while call 1 runs
            router.send(call(1, "run_then"))
            router.send(Cancel(1, "the client cancelled"))
            assert text(await router.answer(2)) == "ok"
            for n in range(3, 6):
                router.send(call(n, "checkpoint_once"))
                assert text(await router.answer(n)) == "ok"
            assert worker.running == {} and worker.core.cancelled == set()

    trio.run(main)


def test_calls_read_together_are_all_answered(tools: Tools) -> None:
    async def main() -> None:
        async with running_worker(tools) as (router, worker):
            for n in range(1, 41):
                router.send(call(n, "set_variable", value=str(n)))
            answers = {}
            for _ in range(40):
                message = await router.next_result()
                answers[message.call_id] = text(message.result)
            assert answers == {n: "unset" for n in range(1, 41)}
            assert worker.running == {}

    trio.run(main)
