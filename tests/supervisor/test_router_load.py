"""Issue 17, over the router's fake socket: what a worker's threads held by cancelled calls do to routing
(THREADS), and frames too large to send (``max_message_size``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.errors import InvalidArgumentsError
from shared.protocol import Call, Reply, Request, Result, Threads
from supervisor.status import status_document
from tests.supervisor.fakes import WAIT, connect, running_router
from tests.supervisor.test_status import supervisor, worker

pytestmark = pytest.mark.anyio


async def within(awaitable: Any) -> Any:
    return await asyncio.wait_for(awaitable, WAIT)


async def test_a_worker_whose_threads_cancelled_calls_hold_is_saturated_and_routed_around() -> None:
    """Eight cancelled sync calls that ignore their cancellation fill asyncio-0's pool: the router saw
    0 calls in flight there and kept sending it sync calls, which waited for a thread and timed out."""
    async with running_router(["asyncio"]) as (router, socket):
        stuck = connect(router, socket, "asyncio-0", 11, "asyncio", "work")
        other = connect(router, socket, "asyncio-1", 12, "asyncio", "work")
        stuck.send(Threads(8, 8, {"stubborn": 8}))

        for _ in range(3):  # without the report, the tie (0 and 0 in flight) went to asyncio-0 each time
            call = asyncio.create_task(router.call("work", {}, timeout=30))
            other.answer(await other.next_call())
            await within(call)
        assert not socket.sent_to(stuck.identity, Call)

        workers = [
            worker("asyncio-0", 11, "asyncio", "asyncio"),
            worker("asyncio-1", 12, "asyncio", "asyncio"),
        ]
        document = status_document(router, supervisor(*workers))
        assert document["workers"][0]["saturated"] == (
            "8 of 8 sync-tool threads busy, 8 held by cancelled calls (stubborn ×8)"
        )
        assert document["workers"][0]["sync_threads"] == {"busy": 8, "size": 8, "held": {"stubborn": 8}}
        assert document["workers"][1]["saturated"] is None

        stuck.send(Threads(0, 8, {}))  # the stubborn calls returned at last
        call = asyncio.create_task(router.call("work", {}, timeout=30))
        stuck.answer(await stuck.next_call())  # the tie goes to the first again
        await within(call)
        assert status_document(router, supervisor(*workers))["workers"][0]["saturated"] is None


async def test_a_worker_whose_threads_are_all_busy_gets_a_call_only_when_no_other_has_room() -> None:
    """Full with calls the router still counts (no thread held by a cancelled call): the loads are equal,
    the saturated worker comes last."""
    async with running_router(["asyncio"], max_in_flight=1) as (router, socket):
        full = connect(router, socket, "asyncio-0", 11, "asyncio", "work")
        other = connect(router, socket, "asyncio-1", 12, "asyncio", "work")
        full.send(Threads(1, 1, {}))
        first = asyncio.create_task(router.call("work", {}, timeout=30))
        held = await other.next_call()  # the tie (0 and 0) no longer goes to the first worker
        second = asyncio.create_task(router.call("work", {}, timeout=30))
        full.answer(await full.next_call())  # no room elsewhere: the saturated worker still serves
        await within(second)
        other.answer(held)
        await within(first)


async def test_a_saturated_worker_still_serves_when_it_is_the_only_one() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        only = connect(router, socket, "asyncio-0", 11, "asyncio", "work")
        only.send(Threads(2, 2, {"stubborn": 1}))
        call = asyncio.create_task(router.call("work", {}, timeout=30))
        only.answer(await only.next_call())
        await within(call)


async def test_threads_held_by_cancelled_calls_count_against_max_in_flight() -> None:
    async with running_router(["asyncio"], max_in_flight=2) as (router, socket):
        only = connect(router, socket, "asyncio-0", 11, "asyncio", "work")
        only.send(Threads(2, 8, {"stubborn": 2}))  # 2 held: no room for a third call
        waiting = asyncio.create_task(router.call("work", {}, timeout=30))
        await asyncio.sleep(0)
        assert router.queued_calls == 1 and not socket.sent_to(only.identity, Call)
        only.send(Threads(1, 8, {"stubborn": 1}))  # one came back: the waiting call goes
        only.answer(await only.next_call())
        await within(waiting)


# -- frames too large -------------------------------------------------------------------------------


async def test_a_call_whose_arguments_are_over_max_message_size_fails_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The CALL was sent, the worker's socket dropped it (ZMQ_MAXMSGSIZE) and the call waited for its
    deadline; now it fails before anything is sent."""
    async with running_router(["asyncio"]) as (router, socket):
        target = connect(router, socket, "asyncio-0", 11, "asyncio", "work")
        with pytest.raises(
            InvalidArgumentsError,
            match=r"the arguments of tool 'work' would take \d+ bytes, over the limit of 1048576 bytes \(max_message_size\)",
        ):
            await within(router.call("work", {"blob": "x" * (1 << 20)}, timeout=30))
        assert not socket.sent_to(target.identity, Call)
        assert router.links()[0].in_flight == set() and router.queued_calls == 0
        call = asyncio.create_task(router.call("work", {"blob": "small"}, timeout=30))  # the slot is free
        target.answer(await target.next_call())
        await within(call)


async def test_a_reply_over_max_message_size_becomes_an_error_reply() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        caller = connect(router, socket, "asyncio-0", 11, "asyncio", "caller")
        callee = connect(router, socket, "asyncio-1", 12, "asyncio", "big")
        call = asyncio.create_task(router.call("caller", {}, timeout=30))
        sent = await caller.next_call()
        caller.send(Request(sent.call_id, 1, "tools/call", {"name": "big", "arguments": {}}))
        inner = await callee.next_call()
        huge = {"content": [{"type": "text", "text": "y" * (1 << 20)}], "isError": False}
        callee.send(Result(inner.call_id, huge))
        reply = await socket.next(Reply, caller.identity)
        assert reply.result is None and reply.error is not None
        assert "the REPLY frame would take" in reply.error["message"]
        assert "max_message_size" in reply.error["message"]
        caller.answer(sent)
        await within(call)
