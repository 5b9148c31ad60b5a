"""``subscriptions/listen`` with ``taskIds`` (``supervisor.task_listen``), driven through the SDK's own
``ServerSession``: every frame is what the SDK would put on the wire, recorded by a fake outbound."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, SubscriptionsListenRequestParams

from shared.errors import MISSING_REQUIRED_CLIENT_CAPABILITY
from supervisor.config import Settings
from supervisor.front import listen_handler
from supervisor.router import Router
from supervisor.task_listen import TaskListenHandler, TaskStreams
from supervisor.tasks_front import TASKS_EXTENSION

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
SUBSCRIPTION = "io.modelcontextprotocol/subscriptionId"
ACK = "notifications/subscriptions/acknowledged"
DECLARED = {"io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
WAIT = 5.0

Frame = tuple[str, dict[str, Any] | None]


class Outbound:
    """The listen request's outbound channel: keeps every frame; with ``hold`` set, a write after the ack
    waits until ``release`` is set (a client that stopped reading)."""

    def __init__(self, *, hold: bool = False) -> None:
        self.frames: list[Frame] = []
        self.written = anyio.Event()
        self.hold = hold
        self.writing = anyio.Event()
        self.release = anyio.Event()

    async def notify(self, method: str, params: Any, opts: Any = None) -> None:
        if self.hold and self.frames:
            self.writing.set()
            await self.release.wait()
        self.frames.append((method, params))
        self.written.set()

    async def next(self, count: int) -> list[Frame]:
        """The first ``count`` frames, once written."""
        with anyio.fail_after(WAIT):
            while len(self.frames) < count:
                self.written = anyio.Event()
                await self.written.wait()
        return self.frames[:count]


class Connection:
    """What ``ServerSession`` reads of its connection; its standalone channel must stay unused."""

    protocol_version = MODERN

    def __init__(self) -> None:
        self.outbound = Outbound()


class Listen:
    """One ``subscriptions/listen`` request (id 7) served by ``handler`` in a task group."""

    def __init__(self, handler: Any, notifications: dict[str, Any], meta: dict[str, Any], outbound: Outbound):
        raw = {"notifications": notifications, "_meta": meta}
        self.connection = Connection()
        self.outbound = outbound
        self.ctx = ServerRequestContext(
            session=ServerSession(outbound, self.connection),  # type: ignore[arg-type]
            lifespan_context={},
            protocol_version=MODERN,
            method="subscriptions/listen",
            params=raw,
            request_id=7,
        )
        self.params = SubscriptionsListenRequestParams.model_validate(raw)
        self.handler = handler
        self.result: dict[str, Any] | None = None

    async def serve(self) -> None:
        result = await self.handler(self.ctx, self.params)
        self.result = result.model_dump(by_alias=True, mode="json", exclude_none=True)


@asynccontextmanager
async def listening(
    handler: Any,
    notifications: dict[str, Any],
    meta: dict[str, Any] | None = None,
    outbound: Outbound | None = None,
) -> AsyncIterator[Listen]:
    """A listen stream whose ack is out; on exit, closed gracefully and served to its end."""
    listen = Listen(handler, notifications, DECLARED if meta is None else meta, outbound or Outbound())
    async with anyio.create_task_group() as group:
        group.start_soon(listen.serve)
        await listen.outbound.next(1)
        yield listen
        handler.close()
    assert listen.connection.outbound.frames == []


def stamped(params: dict[str, Any]) -> dict[str, Any]:
    return {**params, "_meta": {SUBSCRIPTION: 7}}


def task(task_id: str, status: str = "working", **fields: Any) -> dict[str, Any]:
    """A DetailedTask as the task queue reports it."""
    return {
        "taskId": task_id,
        "status": status,
        "createdAt": "2026-08-01T10:00:00Z",
        "lastUpdatedAt": "2026-08-01T10:00:01Z",
        "ttlMs": None,
        **fields,
    }


async def test_task_ids_without_the_extension_are_refused_before_any_frame() -> None:
    streams = TaskStreams()
    listen = Listen(
        TaskListenHandler(InMemorySubscriptionBus(), streams), {"taskIds": ["t1"]}, {}, Outbound()
    )
    with pytest.raises(MCPError) as refused:
        await listen.serve()
    assert refused.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY == -32021
    assert refused.value.error.data == {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
    assert listen.outbound.frames == [] and len(streams) == 0


@pytest.mark.parametrize("task_ids", ["t1", ["t1", 2], {"t1": True}])
async def test_malformed_task_ids_are_invalid_params(task_ids: Any) -> None:
    listen = Listen(
        TaskListenHandler(InMemorySubscriptionBus(), TaskStreams()),
        {"taskIds": task_ids},
        DECLARED,
        Outbound(),
    )
    with pytest.raises(MCPError) as refused:
        await listen.serve()
    assert refused.value.error.code == INVALID_PARAMS
    assert listen.outbound.frames == []


async def test_the_ack_echoes_the_task_ids_with_the_sdk_s_filters() -> None:
    handler = TaskListenHandler(InMemorySubscriptionBus(), TaskStreams(), max_task_ids=2)
    requested = {
        "toolsListChanged": True,
        "promptsListChanged": False,
        "resourceSubscriptions": ["r://a"],
        "taskIds": ["t1", "t1", "unknown", "t3"],
    }
    async with listening(handler, requested) as listen:
        assert listen.outbound.frames == [
            (
                ACK,
                stamped(
                    {
                        "notifications": {
                            "toolsListChanged": True,
                            "resourceSubscriptions": ["r://a"],
                            "taskIds": ["t1", "unknown"],  # distinct, at most max_task_ids, unknown ones too
                        }
                    }
                ),
            )
        ]
    assert listen.result == {"_meta": {SUBSCRIPTION: 7}, "resultType": "complete"}


async def test_a_listed_task_s_states_arrive_whole_and_an_unlisted_one_s_do_not() -> None:
    streams = TaskStreams()
    handler = TaskListenHandler(InMemorySubscriptionBus(), streams)
    working = task("t1", statusMessage="half way", pollIntervalMs=500)
    other = task("t2")
    done = task("t1", "completed", result={"content": [{"type": "text", "text": "ok"}], "isError": False})
    async with listening(handler, {"taskIds": ["t1"]}) as listen:
        streams.publish(working)
        streams.publish(other)
        streams.publish(done)
        frames = await listen.outbound.next(3)
    assert frames[1:] == [("notifications/tasks", stamped(working)), ("notifications/tasks", stamped(done))]
    assert len(listen.outbound.frames) == 3


async def test_a_task_s_own_meta_is_kept_beside_the_subscription_id() -> None:
    streams = TaskStreams()
    async with listening(
        TaskListenHandler(InMemorySubscriptionBus(), streams), {"taskIds": ["t1"]}
    ) as listen:
        streams.publish(task("t1", _meta={"example.com/x": 1}))
        (_, params) = (await listen.outbound.next(2))[1]
    assert params is not None and params["_meta"] == {"example.com/x": 1, SUBSCRIPTION: 7}


async def test_the_sdk_s_own_filters_give_the_same_frames_as_the_sdk_s_handler() -> None:
    requested = {"toolsListChanged": True, "resourceSubscriptions": ["r://a"]}
    events = [ToolsListChanged(), PromptsListChanged(), ResourceUpdated("r://b"), ResourceUpdated("r://a")]
    seen: list[list[Frame]] = []
    for handler_of in (ListenHandler, lambda bus: TaskListenHandler(bus, TaskStreams())):
        bus = InMemorySubscriptionBus()
        async with listening(handler_of(bus), requested) as listen:
            for event in events:
                await bus.publish(event)
        seen.append(listen.outbound.frames)
        assert listen.result == {"_meta": {SUBSCRIPTION: 7}, "resultType": "complete"}
    ours, sdk = seen[1], seen[0]
    assert ours == sdk
    assert [method for method, _ in ours] == [
        ACK,
        "notifications/tools/list_changed",
        "notifications/resources/updated",
    ]


async def test_a_closed_stream_leaves_the_registry() -> None:
    streams = TaskStreams()
    handler = TaskListenHandler(InMemorySubscriptionBus(), streams)
    async with listening(handler, {"taskIds": ["t1", "t2"]}):
        async with listening(handler, {"taskIds": ["t1"]}):
            assert (streams.listening("t1"), streams.listening("t2"), len(streams)) == (2, 1, 2)
    assert len(streams) == 0


async def test_a_client_going_away_leaves_the_registry() -> None:
    streams = TaskStreams()
    listen = Listen(
        TaskListenHandler(InMemorySubscriptionBus(), streams), {"taskIds": ["t1"]}, DECLARED, Outbound()
    )
    async with anyio.create_task_group() as group:
        group.start_soon(listen.serve)
        await listen.outbound.next(1)
        assert streams.listening("t1") == 1
        group.cancel_scope.cancel()
    assert len(streams) == 0 and listen.result is None


async def test_a_stream_whose_client_stopped_reading_ends_at_its_backlog_cap() -> None:
    streams = TaskStreams()
    handler = TaskListenHandler(InMemorySubscriptionBus(), streams, max_buffered_events=1)
    outbound = Outbound(hold=True)
    async with listening(handler, {"taskIds": ["t1"]}, outbound=outbound):
        streams.publish(task("t1", statusMessage="1"))  # taken: the handler is stuck writing it
        with anyio.fail_after(WAIT):
            await outbound.writing.wait()
        streams.publish(task("t1", statusMessage="2"))  # buffered
        assert streams.listening("t1") == 1
        streams.publish(task("t1", statusMessage="3"))  # over the cap: the stream ends
        assert len(streams) == 0
        outbound.release.set()
    assert [params["statusMessage"] for _, params in outbound.frames[1:] if params] == ["1", "2"]


async def test_the_subscription_limit_holds_for_task_streams() -> None:
    handler = TaskListenHandler(InMemorySubscriptionBus(), TaskStreams(), max_subscriptions=1)
    async with listening(handler, {"taskIds": ["t1"]}):
        second = Listen(handler, {"taskIds": ["t2"]}, DECLARED, Outbound())
        with pytest.raises(MCPError) as refused:
            await second.serve()
        assert refused.value.error.code == INTERNAL_ERROR and second.outbound.frames == []


async def test_the_front_serves_task_ids_only_with_a_task_queue() -> None:
    bus = InMemorySubscriptionBus()
    router = Router("inproc://unused", pools=["asyncio"], max_message_size=1 << 20, heartbeat_interval=3600.0)
    assert isinstance(listen_handler(router, Settings(task_queue=False), bus), ListenHandler)
    handler = listen_handler(router, Settings(task_queue=True), bus)
    assert isinstance(handler, TaskListenHandler)
    async with listening(handler, {"taskIds": ["t1"]}) as listen:
        router.on_task_changed(task("t1"))
        assert (await listen.outbound.next(2))[1] == ("notifications/tasks", stamped(task("t1")))
