"""Unit tests of the router's rules for the workers of remote nodes (supervisor/remote_workers.py and the
remote half of supervisor/links.py), over the fake socket: a remote worker's identity is the one the tcp
listener makes (``links.remote_identity``), so the node it names is the node its key proved."""

from __future__ import annotations

import asyncio
import errno
import logging
from pathlib import Path
from typing import Any

import pytest
import zmq

from shared.errors import METHOD_NOT_FOUND, NoWorkerError, WorkerLostError
from shared.protocol import CatalogChanged, Drain, Heartbeat, Leaving, Reply, Request, Stop
from supervisor.links import node_of, remote_identity
from supervisor.worker_listener import ListenOptions
from tests.supervisor.fakes import WAIT, FakeSocket, FakeWorker, connect, running_router, tool_entry

pytestmark = pytest.mark.anyio

LISTEN = ListenOptions("tcp://127.0.0.1:1", Path("/unused"), Path("/unused"))
"""The router only needs to know it listens: the fake socket stands for both sockets."""


def remote(
    socket: FakeSocket, node: str, worker_id: str, pid: int, *tools: str, **metadata: Any
) -> FakeWorker:
    """A worker of ``node`` whose READY comes through the tcp listener (no ``expect``: no arbiter here)."""
    worker = FakeWorker(socket, worker_id, pid, "trio", [tool_entry(name, **metadata) for name in tools])
    worker.identity = remote_identity(node, f"{worker_id}/{pid}/1".encode())
    worker.ready()
    return worker


def test_a_remote_identity_names_its_node_and_a_local_one_none() -> None:
    assert node_of(remote_identity("node-a", b"node-a:trio-0/42/1")) == "node-a"
    assert node_of(b"trio-0/42") is None


async def test_a_remote_worker_joins_its_pool_and_takes_calls_without_the_arbiter() -> None:
    readied: list[Any] = []
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        router.on_ready = readied.append
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        call = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        worker.answer(await worker.next_call())
        assert (await call)["content"][0]["text"] == "done"
        assert readied == []  # its pid is another host's: the arbiter is not told
        [link] = router.remote.links()
        assert (link.node, link.worker_id, link.pid) == ("node-a", "node-a:trio-0", 42)
        assert router.link_of(42) is None  # nothing asked by pid reaches it


@pytest.mark.parametrize(
    ("node", "worker_id", "pool", "reason"),
    [
        ("node-b", "node-a:trio-0", "trio", "proved the key of node 'node-b'"),
        ("node-a", "trio-0", "trio", "whose workers are named node-a:<slot>"),
        ("node-a", "node-a:trio-queue", "trio-queue", "pool 'trio-queue' is not open to remote workers"),
    ],
)
async def test_a_remote_ready_its_node_may_not_send_is_refused(
    node: str, worker_id: str, pool: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_router(["trio", "trio-queue"], listen=LISTEN) as (router, socket):
        worker = FakeWorker(socket, worker_id, 42, pool, [tool_entry("echo")])
        worker.identity = remote_identity(node, b"x/42/1")
        with caplog.at_level(logging.ERROR, "mcp_supervisor.router"):
            worker.ready()
        stop = await worker.next(Stop)
        assert stop.reason.startswith("refused") and reason in stop.reason
        assert reason in caplog.text and router.remote.links() == []


async def test_a_remote_worker_with_other_entries_than_its_pool_is_refused_by_name() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        connect(router, socket, "trio-0", 7, "trio", "echo", "add")
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo", "mul")
        stop = await worker.next(Stop)
        assert "lacks add" in stop.reason and "adds mul" in stop.reason
        same_names = remote(socket, "node-a", "node-a:trio-1", 43, "echo", "add", read_only=True)
        assert "in the definition of add, echo" in (await same_names.next(Stop)).reason
        assert router.remote.links() == []


async def test_no_remote_worker_is_accepted_without_a_listener() -> None:
    async with running_router(["trio"]) as (router, socket):
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        assert "is not open to remote workers" in (await worker.next(Stop)).reason


async def test_a_local_pid_equal_to_a_remote_one_is_never_confused_with_it() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        far = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        near = connect(router, socket, "trio-0", 42, "trio", "echo")
        assert router.link_of(42) is not None and router.link_of(42).node is None  # type: ignore[union-attr]
        router.drain(42)
        assert socket.sent_to(far.identity, Drain) == [] and socket.sent_to(near.identity, Drain) != []
        router.worker_gone(42, "local worker gone")
        assert [link.worker_id for link in router.links()] == ["node-a:trio-0"]


async def test_a_silent_remote_worker_is_dropped_its_calls_answered_and_told_to_rejoin() -> None:
    unresponsive: list[Any] = []
    async with running_router(["trio"], listen=LISTEN, heartbeat_interval=0.02) as (router, socket):
        router.on_unresponsive = unresponsive.append
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        call = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        await worker.next_call()
        with pytest.raises(WorkerLostError, match="missed its heartbeats"):
            await call  # nothing answers: the worker is silent
        stop = await worker.next(Stop)
        assert stop.reason.startswith("rejoin")
        assert router.remote.links() == [] and unresponsive == []  # no one is asked to kill a remote pid


async def test_a_remote_worker_whose_connection_is_gone_is_dropped_at_the_next_send() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo", idempotent=True)
        call = asyncio.create_task(router.call("echo", {}, timeout=0.5))
        await worker.next_call()
        socket.gone.add(worker.identity)
        router.remote.send_failed(worker.identity, zmq.ZMQError(errno.EHOSTUNREACH))
        # idempotent: sent once more, but no worker of the pool is left
        with pytest.raises(NoWorkerError):
            await call
        assert router.remote.links() == []


async def test_leaving_routes_no_new_call_and_lets_the_running_one_finish() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        first = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        second = remote(socket, "node-a", "node-a:trio-1", 43, "echo")
        running = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        call = await first.next_call()
        first.send(Leaving("node stopping"))
        later = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        second.answer(await second.next_call(), "from the second")
        assert (await later)["content"][0]["text"] == "from the second"
        first.answer(call, "finished")
        assert (await running)["content"][0]["text"] == "finished"


async def test_a_worker_that_joins_again_replaces_its_old_link_at_once() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        old = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        call = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        await old.next_call()
        new = FakeWorker(socket, "node-a:trio-0", 42, "trio", [tool_entry("echo")])
        new.identity = remote_identity("node-a", b"node-a:trio-0/42/2")
        new.ready()
        with pytest.raises(WorkerLostError, match="joined again"):
            await call
        assert [link.identity for link in router.remote.links()] == [new.identity]


async def test_a_message_of_an_unknown_remote_identity_is_told_to_rejoin() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        stranger = remote_identity("node-a", b"node-a:trio-0/42/1")
        socket.deliver(stranger, Heartbeat(0))
        assert (await socket.next(Stop, stranger)).reason.startswith("rejoin")
        socket.deliver(b"trio-0/7", Heartbeat(0))  # a local stranger: ignored, as before
        await asyncio.sleep(0)
        assert socket.sent_to(b"trio-0/7", Stop) == []


async def test_a_pool_only_nodes_fill_is_not_waited_for_and_unlisted_when_they_leave() -> None:
    changes: list[int] = []
    async with running_router(["asyncio", "trio"], optional_pools=frozenset({"trio"}), listen=LISTEN) as (
        router,
        socket,
    ):
        connect(router, socket, "asyncio-0", 7, "asyncio", "local_tool")
        assert router.catalog.settled.is_set()  # trio is optional: not waited for
        router.catalog.on_change = lambda: changes.append(router.catalog.version)
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "remote_tool")
        await asyncio.sleep(0)
        assert "remote_tool" in {t["name"] for t in router.tools()} and len(changes) == 1
        router.remote.send_failed(worker.identity, zmq.ZMQError(errno.EHOSTUNREACH))
        await asyncio.sleep(0)
        assert {t["name"] for t in router.tools()} == {"local_tool"} and len(changes) == 2


async def test_a_remote_worker_may_make_no_request_of_its_own() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        worker.send(Request(0, 1, "supervisor/task_changed", {"task": {"taskId": "mcp-x"}}))
        reply = await worker.next(Reply)
        assert reply.error is not None and reply.error["code"] == METHOD_NOT_FOUND


async def test_release_drains_the_remote_workers_waits_for_their_calls_then_stops_them() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        call = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        running = await worker.next_call()
        release = asyncio.create_task(router.remote.release(WAIT))
        await worker.next(Drain)
        assert not release.done()
        worker.answer(running)
        assert await release is True and (await call)["isError"] is False
        assert (await worker.next(Stop)).reason == "the supervisor is stopping"
        assert router.remote.links() == []


async def test_a_remote_worker_cannot_change_the_entries_of_its_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        await asyncio.sleep(0)
        with caplog.at_level(logging.ERROR, "mcp_supervisor.router"):
            worker.send(CatalogChanged([tool_entry("echo"), tool_entry("sneaky")], [], {}))
            await asyncio.sleep(0)
        assert {t["name"] for t in router.tools()} == {"echo"}
        assert "ignoring a new catalog of node-a:trio-0 (node node-a)" in caplog.text


async def test_a_worker_that_left_and_closes_its_connection_is_a_goodbye_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        worker.send(Leaving("node stopping"))
        with caplog.at_level(logging.INFO, "mcp_supervisor.router"):
            router.remote.send_failed(worker.identity, zmq.ZMQError(errno.EHOSTUNREACH))
            await asyncio.sleep(0)
        assert router.remote.links() == []
        assert "node-a:trio-0 (pid 42 on node-a) left" in caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_leaving_still_unread_when_the_connection_closes_is_read_first_a_goodbye(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # libzmq refuses a send (EHOSTUNREACH) to a peer whose connection closed while its last messages still
    # wait in the listener: the router must read them before it calls the peer lost
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        worker = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        waiting = [Leaving("node stopping")]
        router.remote.receive_waiting = lambda: [worker.send(waiting.pop()) for _ in list(waiting)]
        with caplog.at_level(logging.INFO, "mcp_supervisor.router"):
            router.remote.send_failed(worker.identity, zmq.ZMQError(errno.EHOSTUNREACH))
            await asyncio.sleep(0)
        assert waiting == [] and router.remote.links() == []
        assert "node-a:trio-0 (pid 42 on node-a) left" in caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_call_lost_with_the_last_worker_of_a_pool_only_nodes_fill_is_retried_on_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pool's entries leave the listing with its last worker, but the call keeps the retry rule it
    started under: it waits for the next worker of the pool (a node's spare, a node back) and runs there."""
    optional = frozenset({"trio"})
    async with running_router(["trio"], optional_pools=optional, listen=LISTEN) as (router, socket):
        first = remote(socket, "node-a", "node-a:trio-0", 42, "echo", idempotent=True)
        call = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        await first.next_call()
        with caplog.at_level(logging.WARNING, "mcp_supervisor.router"):
            router.remote.send_failed(first.identity, zmq.ZMQError(errno.EHOSTUNREACH))
            async with asyncio.timeout(WAIT):
                while "retrying echo once" not in caplog.text and not call.done():
                    await asyncio.sleep(0)
        assert not call.done()  # waiting for a worker of the pool, not failed
        assert router.tools() == []  # unlisted with its last worker
        second = remote(socket, "node-a", "node-a:trio-1", 43, "echo", idempotent=True)
        second.answer(await second.next_call(), "retried")
        assert (await call)["content"][0]["text"] == "retried"


async def test_another_process_of_the_same_slot_is_another_worker() -> None:
    """A node's reload: its new trio-0 joins while the old one, draining, finishes its call."""
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        old = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        running = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        call = await old.next_call()
        old.send(Leaving("reload"))
        new = remote(socket, "node-a", "node-a:trio-0", 43, "echo")
        later = asyncio.create_task(router.call("echo", {}, timeout=WAIT))
        new.answer(await new.next_call(), "new")
        old.answer(call, "old")
        assert [(await running)["content"][0]["text"], (await later)["content"][0]["text"]] == ["old", "new"]
        assert sorted(link.pid for link in router.remote.links()) == [42, 43]


async def test_a_worker_that_joins_while_the_supervisor_stops_is_told_so() -> None:
    async with running_router(["trio"], listen=LISTEN) as (router, socket):
        assert await router.remote.release(WAIT) is True
        late = remote(socket, "node-a", "node-a:trio-0", 42, "echo")
        assert (await late.next(Stop)).reason == "the supervisor is stopping"
        assert router.remote.links() == []
