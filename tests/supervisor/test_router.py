"""Unit tests of supervisor/router.py over a fake socket: frames in, frames out, no ZeroMQ, no process.

Routing rules that need no real process live here (they were end-to-end tests before): the least-loaded
choice and the retry of a read-only call after its worker died.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from shared.errors import (
    INPUT_PENDING,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    CallTimeoutError,
    ClientRequestError,
    InvalidArgumentsError,
    MissingCapabilityError,
    NoWorkerError,
    UnknownToolError,
    WorkerLostError,
)
from shared.protocol import (
    PROTOCOL_VERSION,
    Call,
    Cancel,
    Drain,
    Error,
    Heartbeat,
    Log,
    Progress,
    Reply,
    Request,
    RequestCancel,
    RequestProgress,
    Result,
    Stop,
)
from supervisor import inflight
from supervisor import router as router_module
from supervisor.links import WorkerLink
from tests.supervisor.fakes import WAIT, FakeWorker, connect, running_router, tool_entry

pytestmark = pytest.mark.anyio


async def within(awaitable: Any) -> Any:
    return await asyncio.wait_for(awaitable, WAIT)


# -- READY ------------------------------------------------------------------------------------------


async def test_a_ready_from_the_expected_process_makes_the_worker_routable() -> None:
    readied: list[WorkerLink] = []
    async with running_router(["asyncio"]) as (router, socket):
        router.on_ready = readied.append
        worker = connect(router, socket, "asyncio-0", 101, "asyncio", "echo")

        assert [link.worker_id for link in readied] == ["asyncio-0"]
        assert (readied[0].pool, readied[0].pid, readied[0].identity) == ("asyncio", 101, b"asyncio-0/101")
        assert [entry["name"] for entry in router.tools()] == ["echo"]
        assert router.ready_pools() == {"asyncio": True}
        assert router.link_of(101) is readied[0] and router.links() == readied
        call = asyncio.create_task(router.call("echo", {"x": 1}, timeout=5))
        sent = await worker.next_call()
        assert (sent.tool, sent.arguments) == ("echo", {"x": 1})
        assert 0 < sent.timeout <= 5
        worker.answer(sent, "hi")
        assert await within(call) == {"content": [{"type": "text", "text": "hi"}], "isError": False}
        assert not socket.sent_to(worker.identity, Stop)


@pytest.mark.parametrize(
    ("changes", "expected_pid", "refusal", "logged"),
    [
        ({}, 999, "refused: unexpected worker", "READY from asyncio-0 pid 101: not the process the arbiter"),
        (
            {"worker_id": "asyncio-7"},
            101,
            "refused: unexpected worker",
            "READY from asyncio-7 pid 101: not the",
        ),
        ({"pool": "gpu"}, 101, "refused: pool 'gpu' is not served here", "pool 'gpu' is not served here"),
        (
            {"protocol_version": PROTOCOL_VERSION - 1},
            101,
            "refused: worker asyncio-0 speaks protocol version",
            f"speaks protocol version {PROTOCOL_VERSION - 1}, the router speaks {PROTOCOL_VERSION}",
        ),
        (
            {"catalog": [{"name": "echo"}]},
            101,
            "refused: READY from asyncio-0: malformed catalog entry",
            "malformed catalog entry",
        ),
        (
            {"catalog": [tool_entry("echo", max_concurrency=0)]},
            101,
            "refused: READY from asyncio-0: bad metadata of 'echo'",
            "bad metadata of 'echo'",
        ),
        (
            {"elsewhere": ["not", "a", "map"]},
            101,
            "refused: READY from asyncio-0: catalog must be a list and elsewhere a map",
            "catalog must be a list and elsewhere a map",
        ),
    ],
    ids=[
        "wrong-pid",
        "wrong-worker",
        "unknown-pool",
        "old-protocol",
        "bad-catalog",
        "bad-metadata",
        "bad-elsewhere",
    ],
)
async def test_a_ready_that_cannot_be_accepted_is_answered_with_stop(
    changes: dict[str, Any], expected_pid: int, refusal: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    readied: list[WorkerLink] = []
    async with running_router(["asyncio"]) as (router, socket):
        router.on_ready = readied.append
        worker = FakeWorker(socket, "asyncio-0", 101, "asyncio", [tool_entry("echo")])
        router.expect("asyncio-0", expected_pid)
        with caplog.at_level(logging.WARNING, "mcp_supervisor.router"):
            worker.ready(**changes)

        [stop] = socket.sent_to(worker.identity, Stop)
        assert stop.reason.startswith(refusal)
        assert logged in caplog.text
        assert readied == [] and router.links() == [] and router.tools() == []
        worker.send(Heartbeat(0))  # a refused peer stays unknown: its frames are ignored
        assert socket.sent_to(worker.identity, Stop) == [stop]


async def test_frames_that_cannot_be_read_are_dropped_and_the_router_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_router(["asyncio"]) as (router, socket):
        with caplog.at_level(logging.WARNING, "mcp_supervisor.router"):
            socket.on_frames([b"only-one-frame"])
            socket.on_frames([b"asyncio-0/1", b"\xc1"])
            socket.deliver(b"stranger/1", Result(1, {}))  # not a READY, from an unknown peer
        assert "dropping a message of 1 frames" in caplog.text
        assert "dropping a frame from asyncio-0/1" in caplog.text
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        assert router.ready_pools() == {"asyncio": True}
        with caplog.at_level(logging.WARNING, "mcp_supervisor.router"):
            worker.send(worker.ready_message())
        assert "ignoring unexpected Ready from asyncio-0" in caplog.text


# -- catalog ----------------------------------------------------------------------------------------


async def test_the_catalog_merges_every_pool_and_reports_changes_after_it_settled() -> None:
    changes: list[int] = []
    async with running_router(["asyncio", "trio"]) as (router, socket):
        router.catalog.on_change = lambda: changes.append(router.catalog_version)
        connect(router, socket, "asyncio-0", 1, "asyncio", "echo", "shared_name")
        assert changes == []  # not settled yet: trio has not announced
        connect(router, socket, "trio-0", 2, "trio", "trio_echo", "shared_name")
        assert [entry["name"] for entry in router.tools()] == ["echo", "shared_name", "trio_echo"]
        assert router.tool("shared_name") is not None
        assert changes == []  # the first full catalog is not a change

        connect(router, socket, "trio-1", 3, "trio", "trio_echo")  # same tools minus one
        assert [entry["name"] for entry in router.tools()] == ["echo", "shared_name", "trio_echo"]
        assert changes == []  # shared_name is still served by asyncio
        connect(router, socket, "trio-2", 4, "trio", "trio_new")
        assert [entry["name"] for entry in router.tools()] == ["echo", "shared_name", "trio_new"]
        assert changes == [router.catalog_version]


async def test_a_failed_pool_leaves_the_listing_and_its_calls_fail_fast() -> None:
    async with running_router(["asyncio", "trio"]) as (router, socket):
        connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        connect(router, socket, "trio-0", 2, "trio", "trio_echo")
        router.worker_gone(2, "worker trio-0 (pid 2) exit code 70")
        router.set_pool_failed("trio", "every trio worker is failing: exit code 70")

        with pytest.raises(NoWorkerError, match="runtime trio is unavailable: every trio worker is failing"):
            await within(router.call("trio_echo", {}, timeout=30))
        assert [entry["name"] for entry in router.tools()] == ["echo"]
        assert router.pool_failures() == {"trio": "every trio worker is failing: exit code 70"}
        assert router.ready_pools() == {"asyncio": True, "trio": False}
        connect(router, socket, "trio-0", 3, "trio", "trio_echo")  # back after its rest
        assert router.pool_failures() == {}
        assert [entry["name"] for entry in router.tools()] == ["echo", "trio_echo"]


@pytest.mark.parametrize("back_as", ["restarted", "adopted spare"])
async def test_issue_17_a_pool_back_from_its_flapping_rest_is_listed_again_with_list_changed(
    back_as: str,
) -> None:
    """Issue 17: after the rest, tools/list left out the pool's tools (no list_changed) until the next
    worker start, because the catalog was rebuilt before the failure mark was cleared."""
    changes: list[int] = []
    async with running_router(["asyncio", "trio"]) as (router, socket):
        connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        connect(router, socket, "trio-0", 2, "trio", "trio_echo")
        router.catalog.on_change = lambda: changes.append(router.catalog_version)
        router.worker_gone(2, "worker trio-0 (pid 2) exit code 70")
        router.set_pool_failed("trio", "every trio worker is failing: exit code 70")
        assert [entry["name"] for entry in router.tools()] == ["echo"] and len(changes) == 1
        router.set_pool_failed("trio", "every trio worker is failing: exit code 70")  # the rest ended
        if back_as == "restarted":
            connect(router, socket, "trio-0", 3, "trio", "trio_echo")
        else:
            spare = FakeWorker(socket, "trio-spare-0", 3, "trio", [tool_entry("trio_echo")])
            router.expect("trio-spare-0", 3, held=True)
            spare.ready()
            assert [entry["name"] for entry in router.tools()] == ["echo"]  # held: not yet
            router.promote(3)

        assert router.pool_failures() == {}
        assert [entry["name"] for entry in router.tools()] == ["echo", "trio_echo"]
        assert changes == [changes[0], router.catalog_version]  # one list_changed out, one back
        assert router.catalog.last_changed == frozenset({"tool"})


async def test_a_call_waiting_for_a_worker_fails_fast_when_its_pool_is_marked_failed() -> None:
    async with running_router(["asyncio", "trio"]) as (router, socket):
        connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        connect(router, socket, "trio-0", 2, "trio", "trio_echo")
        router.worker_gone(2, "worker trio-0 (pid 2) exit code 70")
        waiting = asyncio.create_task(router.call("trio_echo", {}, timeout=30))
        await asyncio.sleep(0)  # it starts waiting for a trio worker
        router.set_pool_failed("trio", "every trio worker is failing: exit code 70")

        with pytest.raises(NoWorkerError, match="runtime trio is unavailable: every trio worker is failing"):
            await within(waiting)


async def test_a_tool_that_no_served_pool_knows_is_unknown() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = FakeWorker(socket, "asyncio-0", 1, "asyncio", [tool_entry("echo")], {"trio_tool": "trio"})
        router.expect("asyncio-0", 1)
        worker.ready()
        for name in ("nope", "trio_tool"):  # trio_tool lives in a pool not served here
            with pytest.raises(UnknownToolError, match=f"unknown tool '{name}'"):
                await router.call(name, {}, timeout=5)


# -- choosing a worker ------------------------------------------------------------------------------


async def test_calls_go_to_the_least_loaded_worker() -> None:
    """Was tests/integration/test_faults.py::test_calls_go_to_the_least_loaded_worker: the choice is the
    router's alone, so it is tested here, on the in-flight counts /status reports."""
    async with running_router(["asyncio"]) as (router, socket):
        first = connect(router, socket, "asyncio-0", 1, "asyncio", "sleep", "whoami")
        second = connect(router, socket, "asyncio-1", 2, "asyncio", "sleep", "whoami")
        sleeping = asyncio.create_task(router.call("sleep", {"seconds": 2}, timeout=30))
        held = await first.next_call()  # the tie goes to the worker that connected first
        assert [len(link.in_flight) for link in router.links()] == [1, 0]

        other = asyncio.create_task(router.call("whoami", {}, timeout=30))
        sent = await second.next_call()
        assert sent.tool == "whoami"
        second.answer(sent, "asyncio-1")
        assert (await within(other))["content"][0]["text"] == "asyncio-1"
        first.answer(held)
        await within(sleeping)
        assert [len(link.in_flight) for link in router.links()] == [0, 0]


async def test_a_draining_worker_gets_no_new_call_but_finishes_its_own() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        first = connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        second = connect(router, socket, "asyncio-1", 2, "asyncio", "echo")
        running = asyncio.create_task(router.call("echo", {}, timeout=30))
        held = await first.next_call()
        router.drain(1)
        router.drain(1)  # idempotent: one DRAIN

        assert len(socket.sent_to(first.identity, Drain)) == 1
        later = asyncio.create_task(router.call("echo", {}, timeout=30))
        second.answer(await second.next_call())
        await within(later)
        first.answer(held)
        await within(running)


async def test_a_held_worker_is_routed_to_only_once_promoted() -> None:
    readied: list[WorkerLink] = []
    async with running_router(["asyncio"]) as (router, socket):
        router.on_ready = readied.append
        old = connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        candidate = FakeWorker(
            socket, "asyncio-0", 2, "asyncio", [tool_entry("echo"), tool_entry("new_tool")]
        )
        router.expect("asyncio-0", 2, held=True)
        candidate.ready()
        assert [link.pid for link in readied] == [1, 2]
        assert [entry["name"] for entry in router.tools()] == ["echo"]  # not merged while held

        call = asyncio.create_task(router.call("echo", {}, timeout=30))
        old.answer(await old.next_call())
        await within(call)
        router.drain(1)
        router.promote(2)
        router.promote(2)  # a no-op now
        assert [entry["name"] for entry in router.tools()] == ["echo", "new_tool"]
        call = asyncio.create_task(router.call("new_tool", {}, timeout=30))
        candidate.answer(await candidate.next_call())
        await within(call)


async def test_a_call_waits_for_a_worker_of_its_pool_that_is_restarting() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        router.worker_gone(1, "worker asyncio-0 (pid 1) killed by SIGKILL")
        assert router.ready_pools() == {"asyncio": False}
        call = asyncio.create_task(router.call("echo", {}, timeout=30))
        await asyncio.sleep(0)
        assert not call.done()
        replacement = connect(router, socket, "asyncio-0", 3, "asyncio", "echo")
        replacement.answer(await replacement.next_call())
        await within(call)


async def test_no_worker_ready_before_the_deadline_is_no_worker_error() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        router.worker_gone(1, "gone")
        with pytest.raises(NoWorkerError, match="no asyncio worker"):
            await within(router.call("echo", {}, timeout=0.01))
        assert router.stats.tools["echo"].outcomes["busy"] == 1


# -- retries ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata", [{"read_only": True}, {"idempotent": True}], ids=["read-only", "idempotent"]
)
async def test_a_read_only_call_is_retried_once_on_the_new_worker(
    metadata: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Was tests/integration/test_faults.py::test_a_read_only_call_is_retried_once_on_the_new_worker for
    the trio worker (the asyncio case stays there, end to end, through a real kill -9): the retry goes
    to the worker's next incarnation, the only worker of its pool, once it is ready."""
    async with running_router(["trio"]) as (router, socket):
        old = connect(router, socket, "trio-0", 1, "trio", "trio_sleep", **metadata)
        call = asyncio.create_task(router.call("trio_sleep", {"seconds": 0.5}, timeout=30))
        first = await old.next_call()
        with caplog.at_level(logging.WARNING, "mcp_supervisor.router"):
            router.worker_gone(1, "worker trio-0 (pid 1) killed by SIGKILL")
            new = connect(router, socket, "trio-0", 2, "trio", "trio_sleep", **metadata)
            again = await new.next_call()
        assert (again.tool, again.arguments) == (first.tool, first.arguments)
        new.answer(again, "slept 0.5 s")
        assert (await within(call))["content"][0]["text"] == "slept 0.5 s"
        assert (
            "retrying trio_sleep once on another worker: worker trio-0 (pid 1) killed by SIGKILL"
            in caplog.text
        )
        assert router.stats.tools["trio_sleep"].outcomes["ok"] == 1


async def test_a_retried_call_whose_worker_dies_again_is_lost() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        first = connect(router, socket, "asyncio-0", 1, "asyncio", "sleep", read_only=True)
        second = connect(router, socket, "asyncio-1", 2, "asyncio", "sleep", read_only=True)
        call = asyncio.create_task(router.call("sleep", {}, timeout=30))
        await first.next_call()
        router.worker_gone(1, "worker asyncio-0 (pid 1) killed by SIGKILL")
        await second.next_call()  # the retry, on the other worker of the pool
        third = connect(router, socket, "asyncio-0", 3, "asyncio", "sleep", read_only=True)
        router.worker_gone(2, "worker asyncio-1 (pid 2) killed by SIGKILL")
        with pytest.raises(WorkerLostError, match=r"worker asyncio-1 \(pid 2\) killed by SIGKILL"):
            await within(call)
        assert socket.sent_to(third.identity, Call) == []


async def test_a_call_that_is_neither_read_only_nor_idempotent_is_not_retried() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        old = connect(router, socket, "asyncio-0", 1, "asyncio", "it_hold")
        other = connect(router, socket, "asyncio-1", 2, "asyncio", "it_hold")
        call = asyncio.create_task(router.call("it_hold", {}, timeout=30))
        await old.next_call()
        router.worker_gone(1, "worker asyncio-0 (pid 1) killed by SIGKILL")
        with pytest.raises(WorkerLostError, match=r"worker asyncio-0 \(pid 1\) killed by SIGKILL"):
            await within(call)
        assert socket.sent_to(other.identity, Call) == []
        assert router.stats.tools["it_hold"].outcomes["worker_lost"] == 1


# -- a call's events --------------------------------------------------------------------------------


async def test_progress_and_logs_reach_the_caller_in_order_before_the_result() -> None:
    seen: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(("progress", progress, total, message))

    async def on_log(level: str, data: Any, logger_name: str | None) -> None:
        seen.append(("log", level, data, logger_name))

    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "work")
        call = asyncio.create_task(
            router.call(
                "work",
                {},
                timeout=30,
                progress_token="tok",
                meta={"k": "v"},
                on_progress=on_progress,
                on_log=on_log,
            )
        )
        sent = await worker.next_call()
        assert (sent.progress_token, sent.meta) == ("tok", {"k": "v"})
        worker.send(Progress(sent.call_id, 1, 3, "one"))
        worker.send(Log(sent.call_id, "info", "tool", {"n": 1}))
        worker.send(Progress(sent.call_id, 2, 3, None))
        worker.answer(sent)
        await within(call)
        assert seen == [
            ("progress", 1, 3, "one"),
            ("log", "info", {"n": 1}, "tool"),
            ("progress", 2, 3, None),
        ]
        assert router.links()[0].calls_served == 1


async def test_an_error_frame_is_the_protocol_error_it_names() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        call = asyncio.create_task(router.call("echo", {"x": 1}, timeout=30))
        worker.send(Error((await worker.next_call()).call_id, -32602, "x: not allowed"))
        with pytest.raises(InvalidArgumentsError, match="x: not allowed"):
            await within(call)
        call = asyncio.create_task(router.call("echo", {}, timeout=30))
        data = {"requiredCapabilities": {"sampling": {}}}
        worker.send(Error((await worker.next_call()).call_id, -32021, "needs sampling", data))
        with pytest.raises(MissingCapabilityError) as caught:
            await within(call)
        assert caught.value.data == data
        assert router.links()[0].calls_failed == 2
        # bad arguments are a tool execution error for the client (SEP-1303), and counted as one
        assert router.stats.tools["echo"].outcomes["tool_error"] == 1
        assert router.stats.tools["echo"].outcomes["protocol_error"] == 1
        noted = [
            (e["kind"], e["worker"], e["pid"], e["tool"], e["message"])
            for e in router.recent_errors.entries()
        ]
        assert noted == [
            ("call", "asyncio-0", 1, "echo", "needs sampling"),
            ("call", "asyncio-0", 1, "echo", "x: not allowed"),
        ]


async def test_frames_of_a_call_from_another_worker_are_ignored() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        other = connect(router, socket, "asyncio-1", 2, "asyncio", "echo")
        call = asyncio.create_task(router.call("echo", {}, timeout=30))
        sent = await worker.next_call()
        other.send(Result(sent.call_id, {"content": [], "isError": True}))
        worker.answer(sent, "mine")
        assert (await within(call))["content"][0]["text"] == "mine"


async def test_a_tool_execution_error_result_is_returned_and_counted() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        call = asyncio.create_task(router.call("echo", {}, timeout=30))
        failed = {"content": [{"type": "text", "text": "boom"}], "isError": True}
        worker.send(Result((await worker.next_call()).call_id, failed))
        assert await within(call) == failed
        assert router.links()[0].calls_failed == 1
        assert router.stats.tools["echo"].outcomes["tool_error"] == 1
        [noted] = router.recent_errors.entries()
        assert (noted["worker"], noted["tool"], noted["message"]) == ("asyncio-0", "echo", "boom")


# -- cancellation and timeouts ----------------------------------------------------------------------


async def test_cancelling_the_caller_sends_cancel_and_forgets_the_call() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "sleep")
        call = asyncio.create_task(router.call("sleep", {}, timeout=30))
        sent = await worker.next_call()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        cancel = await worker.next(Cancel)
        assert cancel == Cancel(sent.call_id, "cancelled by the client")
        assert router.links()[0].in_flight == set()
        assert router.stats.tools["sleep"].outcomes["cancelled"] == 1
        worker.answer(sent)  # too late: dropped
        assert router.links()[0].calls_served == 0


async def test_a_worker_that_does_not_answer_by_its_backstop_is_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(router_module, "BACKSTOP_MARGIN", 0.0)
    monkeypatch.setattr(inflight, "SWEEP_INTERVAL", 0.001)
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "it_block_loop_async")
        with pytest.raises(CallTimeoutError, match="tool 'it_block_loop_async' did not answer within 0.02 s"):
            await within(router.call("it_block_loop_async", {}, timeout=0.02))
        sent = await worker.next_call()
        assert await worker.next(Cancel) == Cancel(sent.call_id, "cancelled by the client")
        assert router.stats.tools["it_block_loop_async"].outcomes["timeout"] == 1


async def test_a_caller_cancelled_from_outside_is_not_a_timeout() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "sleep")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await router.call("sleep", {}, timeout=30)
        await worker.next(Cancel)
        assert router.stats.tools["sleep"].outcomes["cancelled"] == 1


# -- workers going away -----------------------------------------------------------------------------


async def test_a_dead_worker_s_calls_are_answered_at_once_and_sends_to_it_do_not_raise() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "it_hold")
        calls = [asyncio.create_task(router.call("it_hold", {}, timeout=30)) for _ in range(2)]
        await worker.next_call()
        await worker.next_call()
        socket.gone.add(worker.identity)
        router.worker_gone(1, "worker asyncio-0 (pid 1) exit code 1")
        for call in calls:
            with pytest.raises(WorkerLostError, match="exit code 1"):
                await within(call)
        router.stop(1, "bye")  # not connected any more: nothing sent
        assert router.links() == [] and router.ready_pools() == {"asyncio": False}


async def test_aclose_answers_open_calls_and_closes_the_socket() -> None:
    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "it_hold")
        call = asyncio.create_task(router.call("it_hold", {}, timeout=30))
        await worker.next_call()
        router.stop(1, "supervisor stopping")
        assert await worker.next(Stop) == Stop("supervisor stopping")
        await router.aclose()
        with pytest.raises(WorkerLostError, match="the supervisor is stopping"):
            await within(call)
        assert socket.closed


# -- heartbeats -------------------------------------------------------------------------------------


async def test_workers_get_heartbeats_and_a_silent_one_is_drained_and_reported() -> None:
    unresponsive = asyncio.Event()
    reported: list[WorkerLink] = []

    def on_unresponsive(link: WorkerLink) -> None:
        reported.append(link)
        unresponsive.set()

    async with running_router(["asyncio"], heartbeat_interval=0.01) as (router, socket):
        router.on_unresponsive = on_unresponsive
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "echo")
        assert await worker.next(Heartbeat) == Heartbeat(0)
        # the worker says nothing more: after LIVENESS_MISSES intervals it is silent
        await within(unresponsive.wait())
        assert [link.pid for link in reported] == [1] and reported[0].silent
        await worker.next(Drain)
        assert router.ready_pools() == {"asyncio": False}


# -- requests ---------------------------------------------------------------------------------------


async def test_a_tool_can_call_a_tool_and_ask_the_client() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append((method, params))
        return {"action": "accept"}

    async with running_router(["asyncio", "trio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "outer")
        trio = connect(router, socket, "trio-0", 2, "trio", "inner")
        call = asyncio.create_task(router.call("outer", {}, timeout=30, on_request=on_request))
        outer = await worker.next_call()
        worker.send(Request(outer.call_id, 1, "tools/call", {"name": "inner", "arguments": {"n": 2}}))
        inner = await trio.next_call()
        assert (inner.tool, inner.arguments) == ("inner", {"n": 2})
        trio.answer(inner, "from inner")
        reply = await worker.next(Reply)
        assert reply.request_id == 1 and reply.result is not None and reply.error is None
        assert reply.result["content"][0]["text"] == "from inner"

        worker.send(Request(outer.call_id, 2, "elicitation/create", {"message": "ok?"}))
        assert await worker.next(Reply) == Reply(2, {"action": "accept"}, None)
        assert asked == [("elicitation/create", {"message": "ok?"})]
        worker.answer(outer)
        await within(call)

        worker.send(Request(outer.call_id, 3, "sampling/createMessage", {}))  # the call is over
        assert await worker.next(Reply) == Reply(
            3, None, {"code": INTERNAL_ERROR, "message": "the call is over"}
        )


async def test_requests_that_arrive_with_the_result_are_still_seen_by_the_caller() -> None:
    """The concurrent requests of one input round (``asyncio.gather`` of elicit, sample, roots) may reach
    the router in the same batch as the call's RESULT: each must still reach ``on_request`` (which records
    it for the round) before the call ends and cancels what is left."""
    asked: list[str] = []

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append(method)  # an input round records the request here, then refuses it
        raise ClientRequestError("needs the client's answer", INPUT_PENDING)

    async with running_router(["asyncio"]) as (router, socket):
        worker = connect(router, socket, "asyncio-0", 1, "asyncio", "asks")
        call = asyncio.create_task(router.call("asks", {}, timeout=30, on_request=on_request))
        asked_call = await worker.next_call()
        worker.send(Request(asked_call.call_id, 1, "elicitation/create", {"message": "name?"}))
        worker.send(Request(asked_call.call_id, 2, "sampling/createMessage", {}))
        worker.send(Request(asked_call.call_id, 3, "roots/list", {}))
        worker.answer(asked_call)  # in the same batch: nothing ran in between
        await within(call)
    assert asked == ["elicitation/create", "sampling/createMessage", "roots/list"]


async def test_a_worker_s_own_requests_are_answered_and_cancelled() -> None:
    async with running_router(["asyncio", "trio-queue"]) as (router, socket):
        asyncio_worker = connect(router, socket, "asyncio-0", 1, "asyncio", "sleep")
        queue = connect(router, socket, "trio-queue", 2, "trio-queue", "submit_task")
        queue.send(Request(0, 1, "supervisor/tools", {}))
        tools = (await queue.next(Reply)).result
        assert tools is not None and {name: entry["pool"] for name, entry in tools["tools"].items()} == {
            "sleep": "asyncio",
            "submit_task": "trio-queue",
        }
        queue.send(Request(0, 4, "supervisor/workers", {}))
        workers = (await queue.next(Reply)).result
        assert workers is not None and [(w["id"], w["runtime"], w["state"]) for w in workers["workers"]] == [
            ("asyncio-0", "asyncio", "ready"),
            ("trio-queue", "trio-queue", "ready"),
        ]
        queue.send(Request(0, 2, "nonsense", {}))
        reply = await queue.next(Reply)
        assert reply.error is not None and reply.error["code"] == METHOD_NOT_FOUND

        queue.send(Request(0, 3, "tools/call", {"name": "sleep", "arguments": {}, "timeout": 5}))
        sent = await asyncio_worker.next_call()
        asyncio_worker.send(Progress(sent.call_id, 1, 2, "half"))
        assert await queue.next(RequestProgress) == RequestProgress(3, 1, 2, "half")
        queue.send(RequestCancel(3))
        assert await asyncio_worker.next(Cancel) == Cancel(sent.call_id, "cancelled by the client")


async def test_a_worker_s_requests_die_with_it() -> None:
    async with running_router(["asyncio", "trio-queue"]) as (router, socket):
        asyncio_worker = connect(router, socket, "asyncio-0", 1, "asyncio", "sleep")
        queue = connect(router, socket, "trio-queue", 2, "trio-queue", "submit_task")
        queue.send(Request(0, 1, "tools/call", {"name": "sleep", "arguments": {}}))
        sent = await asyncio_worker.next_call()
        assert 0 < sent.timeout <= router.request_timeout  # no timeout given: the request timeout
        router.worker_gone(2, "worker trio-queue (pid 2) killed by SIGKILL")
        assert await asyncio_worker.next(Cancel) == Cancel(sent.call_id, "cancelled by the client")


async def test_a_task_state_the_queue_reports_reaches_on_task_changed() -> None:
    async with running_router(["trio-queue"]) as (router, socket):
        states: list[dict[str, Any]] = []
        router.on_task_changed = states.append
        queue = connect(router, socket, "trio-queue", 2, "trio-queue", "submit_task")
        task = {"taskId": "t1", "status": "working", "ttlMs": None}
        queue.send(Request(0, 1, "supervisor/task_changed", {"task": task}))
        assert await queue.next(Reply) == Reply(1, {}, None)
        assert states == [task]
