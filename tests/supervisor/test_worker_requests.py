"""Unit tests of supervisor/worker_requests.py: every request of a tool or a worker gets one REPLY."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    ClientRequestError,
    MissingCapabilityError,
    UnknownToolError,
    WorkerLostError,
)
from shared.protocol import Message, Reply, Request, RequestProgress
from shared.results import error_result
from supervisor.catalog import Catalog
from supervisor.links import WorkerLink
from supervisor.router_types import ProgressCallback
from supervisor.worker_requests import WorkerRequests
from tests.supervisor.fakes import WAIT, tool_entry

pytestmark = pytest.mark.anyio

OK = {"content": [{"type": "text", "text": "ok"}], "isError": False}


class FakeCaller:
    """``Router.call`` as tool-to-tool calls see it: records the calls, answers with ``outcome``."""

    def __init__(self) -> None:
        self.request_timeout = 300.0
        self.calls: list[tuple[str, Any, float]] = []
        self.tokens: list[str | int | None] = []
        self.outcome: dict[str, Any] | Exception = OK
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any] | None,
        *,
        timeout: float,
        progress_token: str | int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        self.calls.append((tool, arguments, timeout))
        self.tokens.append(progress_token)
        self.started.set()
        if on_progress is not None:
            for report in self.progress:
                await on_progress(*report)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class Harness:
    def __init__(self) -> None:
        self.caller = FakeCaller()
        self.catalog = Catalog(["asyncio", "trio-queue"])
        self.catalog.take("asyncio", [tool_entry("echo")], [], {})
        self.catalog.take("trio-queue", [tool_entry("submit_task")], [], {})
        self.worker = WorkerLink(
            "trio-queue", "trio-queue", 7, b"trio-queue/7", [tool_entry("submit_task")], []
        )
        self.other = WorkerLink("asyncio-0", "asyncio", 8, b"asyncio-0/8", [tool_entry("echo")], [])
        self.other.in_flight.add(3)
        self.links = {link.identity: link for link in (self.worker, self.other)}
        self.sent: list[tuple[bytes, Message]] = []
        self.replied = asyncio.Event()
        self.requests = WorkerRequests(self.caller, self.catalog, self.links, self.send)

    def send(self, identity: bytes, message: Message) -> None:
        self.sent.append((identity, message))
        if isinstance(message, Reply):
            self.replied.set()

    async def reply(self) -> Reply:
        await asyncio.wait_for(self.replied.wait(), WAIT)
        self.replied.clear()
        replies = [message for _, message in self.sent if isinstance(message, Reply)]
        return replies[-1]

    async def ask(self, method: str, params: dict[str, Any], request_id: int = 1) -> Reply:
        """A request the worker makes on its own behalf (``call_id`` 0)."""
        self.requests.start(self.worker, Request(0, request_id, method, params))
        return await self.reply()


# -- a worker's own requests ------------------------------------------------------------------------


async def test_tools_call_runs_the_tool_and_sends_its_progress_back() -> None:
    harness = Harness()
    harness.caller.progress = [(1.0, 2.0, "half")]
    reply = await harness.ask(
        "tools/call", {"name": "echo", "arguments": {"m": 1}, "timeout": 5}, request_id=4
    )

    assert reply == Reply(4, OK, None)
    assert harness.caller.calls == [("echo", {"m": 1}, 5.0)]
    assert harness.caller.tokens == ["queue"]  # without a token the tool would report no progress
    assert (b"trio-queue/7", RequestProgress(4, 1.0, 2.0, "half")) in harness.sent
    assert all(identity == b"trio-queue/7" for identity, _ in harness.sent)


async def test_tools_call_without_a_timeout_gets_the_request_timeout() -> None:
    harness = Harness()
    harness.caller.request_timeout = 42.0
    await harness.ask("tools/call", {"name": "echo"})

    assert harness.caller.calls == [("echo", None, 42.0)]


@pytest.mark.parametrize(
    "params",
    [{}, {"name": 3}, {"name": "echo", "arguments": [1]}],
    ids=["no-name", "name-int", "arguments-list"],
)
async def test_tools_call_with_malformed_params_is_invalid_params(params: dict[str, Any]) -> None:
    harness = Harness()
    reply = await harness.ask("tools/call", params)

    assert reply.result is None and reply.error is not None
    assert reply.error["code"] == INVALID_PARAMS
    assert harness.caller.calls == []


async def test_a_protocol_error_of_the_called_tool_is_an_error_reply_with_its_code_and_data() -> None:
    harness = Harness()
    harness.caller.outcome = MissingCapabilityError(
        "needs sampling", {"requiredCapabilities": {"sampling": {}}}
    )
    reply = await harness.ask("tools/call", {"name": "echo"})

    assert reply.error == {
        "code": MISSING_REQUIRED_CLIENT_CAPABILITY,
        "message": "needs sampling",
        "data": {"requiredCapabilities": {"sampling": {}}},
    }
    harness.caller.outcome = UnknownToolError("unknown tool 'nope'")
    reply = await harness.ask("tools/call", {"name": "nope"})
    assert reply.error == {"code": INVALID_PARAMS, "message": "unknown tool 'nope'"}


async def test_a_tool_execution_error_of_the_called_tool_is_an_is_error_result() -> None:
    harness = Harness()
    harness.caller.outcome = WorkerLostError("worker asyncio-0 (pid 8) killed by SIGKILL")
    reply = await harness.ask("tools/call", {"name": "echo"})

    assert reply == Reply(1, error_result("worker asyncio-0 (pid 8) killed by SIGKILL"), None)


async def test_supervisor_tools_lists_every_tool_with_its_pool() -> None:
    reply = await Harness().ask("supervisor/tools", {})

    assert reply.result is not None
    assert {name: entry["pool"] for name, entry in reply.result["tools"].items()} == {
        "echo": "asyncio",
        "submit_task": "trio-queue",
    }
    assert reply.result["tools"]["echo"]["inputSchema"] == {"type": "object", "properties": {}}


async def test_supervisor_tools_gives_a_tool_without_its_own_timeout_the_servers_issue_17() -> None:
    """The task queue bounds an attempt by the tool's ``timeout_seconds``: unset, that is the deadline the
    call gets, ``request_timeout``; a tool's own stays."""
    harness = Harness()
    harness.catalog.take(
        "asyncio",
        [tool_entry("echo", timeout_seconds=None), tool_entry("tight", timeout_seconds=2.0)],
        [],
        {},
    )
    harness.caller.request_timeout = 900.0
    reply = await harness.ask("supervisor/tools", {})

    assert reply.result is not None
    tools = reply.result["tools"]
    assert (tools["echo"]["metadata"]["timeout_seconds"], tools["tight"]["metadata"]["timeout_seconds"]) == (
        900.0,
        2.0,
    )


async def test_supervisor_workers_describes_every_connected_worker() -> None:
    harness = Harness()
    harness.other.draining = True
    reply = await harness.ask("supervisor/workers", {})

    assert reply.result == {
        "workers": [
            {
                "id": "trio-queue",
                "runtime": "trio-queue",
                "pid": 7,
                "state": "ready",
                "node": None,
                "tools": ["submit_task"],
                "in_flight": 0,
            },
            {
                "id": "asyncio-0",
                "runtime": "asyncio",
                "pid": 8,
                "state": "draining",
                "node": None,
                "tools": ["echo"],
                "in_flight": 1,
            },
        ]
    }


async def test_an_unknown_method_is_method_not_found() -> None:
    reply = await Harness().ask("supervisor/reboot", {})

    assert reply.error == {"code": METHOD_NOT_FOUND, "message": "unknown request 'supervisor/reboot'"}


async def test_cancel_stops_one_request_and_cancel_all_every_request_of_a_worker() -> None:
    harness = Harness()
    harness.caller.release.clear()
    harness.requests.start(harness.worker, Request(0, 1, "tools/call", {"name": "echo"}))
    await asyncio.wait_for(harness.caller.started.wait(), WAIT)
    harness.requests.cancel(harness.other, 1)  # another worker's request 1: not this one
    harness.requests.cancel(harness.worker, 99)  # not running: a no-op
    assert not harness.caller.cancelled.is_set()

    harness.requests.cancel(harness.worker, 1)
    await asyncio.wait_for(harness.caller.cancelled.wait(), WAIT)
    harness.caller.cancelled.clear()
    harness.caller.started.clear()
    harness.requests.start(harness.worker, Request(0, 2, "tools/call", {"name": "echo"}))
    await asyncio.wait_for(harness.caller.started.wait(), WAIT)
    harness.requests.cancel_all(harness.worker)
    await asyncio.wait_for(harness.caller.cancelled.wait(), WAIT)
    assert not any(
        isinstance(message, Reply) for _, message in harness.sent
    )  # a cancelled request is not answered


# -- requests of a running tool ---------------------------------------------------------------------


async def test_a_tool_s_request_goes_to_the_client_and_its_answer_back() -> None:
    harness = Harness()
    asked: list[tuple[str, dict[str, Any]]] = []

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append((method, params))
        return {"role": "assistant"}

    tasks: set[asyncio.Task[None]] = set()
    harness.requests.start_for_call(
        harness.other, Request(3, 5, "sampling/createMessage", {"m": 1}), on_request, tasks
    )
    assert len(tasks) == 1

    assert await harness.reply() == Reply(5, {"role": "assistant"}, None)
    assert asked == [("sampling/createMessage", {"m": 1})]
    assert harness.sent[-1][0] == b"asyncio-0/8"
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert tasks == set()  # done tasks leave the call's set


async def test_a_tool_s_request_the_client_refuses_is_an_error_reply() -> None:
    harness = Harness()

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise ClientRequestError("the client declined", -32000)

    harness.requests.start_for_call(harness.other, Request(3, 5, "elicitation/create", {}), on_request, set())
    assert await harness.reply() == Reply(5, None, {"code": -32000, "message": "the client declined"})
    harness.requests.start_for_call(harness.other, Request(3, 6, "elicitation/create", {}), None, set())
    assert await harness.reply() == Reply(
        6, None, {"code": INTERNAL_ERROR, "message": "elicitation/create cannot reach a client from here"}
    )


async def test_a_tool_can_call_another_tool() -> None:
    harness = Harness()
    harness.requests.start_for_call(
        harness.other, Request(3, 5, "tools/call", {"name": "echo", "arguments": {}}), None, set()
    )

    assert await harness.reply() == Reply(5, OK, None)
    assert harness.caller.calls == [("echo", {}, 300.0)]


async def test_a_request_of_a_call_that_is_over_is_refused() -> None:
    harness = Harness()
    harness.requests.refuse_late(harness.other, Request(3, 5, "sampling/createMessage", {}))

    assert harness.sent == [
        (b"asyncio-0/8", Reply(5, None, {"code": INTERNAL_ERROR, "message": "the call is over"}))
    ]


async def test_a_worker_s_own_requests_are_counted_on_its_link_while_they_run() -> None:
    harness = Harness()
    harness.caller.release.clear()
    harness.requests.start(harness.worker, Request(0, 1, "tools/call", {"name": "echo"}))
    await asyncio.wait_for(harness.caller.started.wait(), WAIT)
    assert harness.worker.own_requests == 1  # a drain of this worker waits for it
    harness.caller.release.set()
    await harness.reply()
    for _ in range(100):  # the task's done callback runs a loop turn after its reply went out
        if harness.worker.own_requests == 0:
            break
        await asyncio.sleep(0)
    assert harness.worker.own_requests == 0
