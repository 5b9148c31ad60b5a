"""``subscriptions/listen`` with the tasks extension's ``taskIds`` (SEP-2663, 2026-07-28).

The SDK's ``ListenHandler`` serves the core filters and drops ``taskIds``. ``TaskListenHandler`` serves
the same stream with the same guarantees, built from the SDK's pieces (its bus, ``event_matches``,
``event_to_notification``): the acknowledgement is the first frame; every frame carries the listen
request's id in ``_meta["io.modelcontextprotocol/subscriptionId"]``; a stream gets only what it asked
for; ``max_subscriptions`` bounds the open streams and ``max_buffered_events`` each one's backlog (a
stream whose client stopped reading is ended at the cap: there is no replay, the client re-listens and
refetches); ``close()`` ends every stream gracefully. To that it adds ``taskIds``:

- honoured only when the request declared the extension in its ``_meta`` client capabilities, else the
  request fails with -32021 before any frame;
- echoed in the acknowledgement (at most ``max_task_ids`` distinct ids; an id nobody knows is honoured
  too: which ids exist is never revealed);
- each state of a listed task the task queue reports reaches the stream as ``notifications/tasks`` whose
  params are the DetailedTask, as ``tasks/get`` would return it, plus the ``_meta`` subscription id.

Nothing else about a task (its progress, its log messages) is sent on a listen stream.

``TaskStreams`` is the registry the front publishes task states to: task id → the streams listing it,
so a state costs one lookup and one buffer put per listening stream, whatever the number of streams.
It holds at most ``max_subscriptions`` × ``max_task_ids`` entries, and a stream leaves it when it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import anyio
import anyio.streams.memory
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import (
    SUBSCRIPTION_ID_META_KEY,
    ServerEvent,
    event_matches,
    event_to_notification,
)
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    Notification,
    ServerNotification,
    SubscriptionFilter,
    SubscriptionsAcknowledgedNotification,
    SubscriptionsAcknowledgedNotificationParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
)

from .tasks_front import declares_tasks, missing_extension

logger = logging.getLogger("mcp_supervisor.task_listen")

MAX_TASK_IDS: Final = 256
"""Distinct task ids one listen stream is honoured for; the ack names those it got."""
TASK_IDS_KEY: Final = "taskIds"
TASK_METHOD: Final = "notifications/tasks"


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task's new state on a stream's buffer: its DetailedTask in wire form."""

    task: Mapping[str, Any]


class TaskNotification(Notification[dict[str, Any], Literal["notifications/tasks"]]):
    """``notifications/tasks``: params are the DetailedTask plus ``_meta``, kept as a plain dict so that
    the SDK's typed models cannot strip the task's fields."""

    method: Literal["notifications/tasks"] = "notifications/tasks"
    params: dict[str, Any]


Deliver = Callable[[TaskState], None]


class TaskStreams:
    """Task id → the open streams that listed it (their ``deliver`` callbacks)."""

    def __init__(self) -> None:
        self._by_task: dict[str, dict[object, Deliver]] = {}

    def add(self, task_ids: Iterable[str], deliver: Deliver) -> Callable[[], None]:
        """Have ``deliver`` told each state of the tasks ``task_ids``; returns the idempotent callable that
        removes it from every one of them."""
        token = object()
        ids = list(task_ids)
        for task_id in ids:
            self._by_task.setdefault(task_id, {})[token] = deliver

        def remove() -> None:
            for task_id in ids:
                listeners = self._by_task.get(task_id)
                if listeners is not None:
                    listeners.pop(token, None)
                    if not listeners:
                        del self._by_task[task_id]

        return remove

    def publish(self, task: Mapping[str, Any]) -> None:
        """Hand the DetailedTask ``task`` to every stream listing its ``taskId``; never raises (the router
        calls it from its ``supervisor/task_changed`` answer)."""
        task_id = task.get("taskId")
        listeners = self._by_task.get(task_id) if isinstance(task_id, str) else None
        if listeners:
            state = TaskState(task)
            for deliver in list(listeners.values()):  # a full stream removes itself while we go
                deliver(state)

    def listening(self, task_id: str) -> int:
        """How many open streams listed ``task_id``."""
        return len(self._by_task.get(task_id, ()))

    def __len__(self) -> int:
        """How many task ids some open stream listed."""
        return len(self._by_task)


class TaskListenHandler:
    """Serves ``subscriptions/listen``: the SDK's filters through ``bus``, ``taskIds`` through ``tasks``
    (see the module docstring). Register it as the server's ``on_subscriptions_listen``."""

    def __init__(
        self,
        bus: SubscriptionBus,
        tasks: TaskStreams,
        *,
        max_subscriptions: int = 1024,
        max_buffered_events: int = 1024,
        max_task_ids: int = MAX_TASK_IDS,
    ) -> None:
        self._bus = bus
        self._tasks = tasks
        self._max_subscriptions = max_subscriptions
        self._max_buffered_events = max_buffered_events
        self._max_task_ids = max_task_ids
        self._streams: set[anyio.streams.memory.MemoryObjectSendStream[ServerEvent | TaskState]] = set()

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        """Serve one listen stream until the client goes away or ``close()``; returns the final frame.

        Raises:
            MCPError: -32600 without a request id; -32602 when ``taskIds`` is not a list of strings;
                -32021 when it is given and the request did not declare the extension; -32603 when
                ``max_subscriptions`` streams are open. Each before any frame is sent.

        Cancellation: the client going away cancels it; the stream just ends (no final frame) and leaves
        the bus and the task registry.
        """
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(INVALID_REQUEST, "subscriptions/listen requires a request id")
        task_ids = self._task_ids(ctx, params.notifications)
        if len(self._streams) >= self._max_subscriptions:
            raise MCPError(INTERNAL_ERROR, "Subscription limit reached")
        honored = _honored(params.notifications, task_ids)
        honored_uris = frozenset(honored.resource_subscriptions or ())
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        send, recv = anyio.create_memory_object_stream[ServerEvent | TaskState](self._max_buffered_events)

        def put(item: ServerEvent | TaskState) -> None:
            try:
                send.send_nowait(item)
            except anyio.ClosedResourceError:  # close() ended the stream; the loop below unwinds
                pass
            except anyio.WouldBlock:
                logger.warning("listen stream %r backlog full; ending the stream", subscription_id)
                # release the slot now: the handler may be stuck writing to a client that stopped reading
                self._streams.discard(send)
                send.close()
                leave_tasks()

        def deliver(event: ServerEvent) -> None:
            if event_matches(honored, honored_uris, event):
                put(event)

        # subscribed before the ack, so that nothing published while the ack is written is lost; the ack
        # is still first: only this task writes the stream, and it drains the buffer after the ack
        leave_tasks = self._tasks.add(task_ids or (), put)
        unsubscribe = self._bus.subscribe(deliver)
        self._streams.add(send)
        try:
            await ctx.session.send_notification(
                SubscriptionsAcknowledgedNotification(
                    params=SubscriptionsAcknowledgedNotificationParams(notifications=honored, _meta=meta)
                ),
                related_request_id=subscription_id,
            )
            async for item in recv:
                await ctx.session.send_notification(
                    _notification(item, meta), related_request_id=subscription_id
                )
        finally:
            leave_tasks()
            try:
                unsubscribe()
            except Exception:  # a raising bus must not keep the stream's slot
                logger.exception("bus unsubscribe raised; continuing stream cleanup")
            self._streams.discard(send)
            send.close()
            recv.close()
        return SubscriptionsListenResult(_meta=meta)

    def close(self) -> None:
        """Start ending every open stream gracefully: each sends what it buffered, then its
        ``SubscriptionsListenResult``. Returns at once; idempotent."""
        for stream in list(self._streams):
            stream.close()

    def _task_ids(
        self, ctx: ServerRequestContext[Any, Any], requested: SubscriptionFilter
    ) -> list[str] | None:
        """The task ids this stream is honoured for (None: it asked for none).

        Raises:
            MCPError: -32602, ``taskIds`` is not a list of strings; -32021, the request did not declare
                the extension.
        """
        extra = requested.model_extra or {}
        if TASK_IDS_KEY not in extra:
            return None
        raw = extra[TASK_IDS_KEY]
        if not isinstance(raw, list) or not all(isinstance(task_id, str) for task_id in raw):
            raise MCPError(INVALID_PARAMS, "subscriptions/listen: taskIds must be a list of strings")
        meta = (ctx.params or {}).get("_meta")
        if not declares_tasks(meta if isinstance(meta, dict) else None):
            missing = missing_extension("task status notifications (subscriptions/listen taskIds)")
            raise MCPError(missing.code, str(missing), missing.data)
        return list(dict.fromkeys(raw))[: self._max_task_ids]


def _honored(requested: SubscriptionFilter, task_ids: list[str] | None) -> SubscriptionFilter:
    """What the ack says the stream will get: every requested kind (as the SDK's handler honours them),
    plus ``taskIds`` when there are some; flags that are not true and empty lists are left out."""
    extension = {TASK_IDS_KEY: task_ids} if task_ids is not None else {}  # the filter's model allows extras
    return SubscriptionFilter(
        tools_list_changed=True if requested.tools_list_changed else None,
        prompts_list_changed=True if requested.prompts_list_changed else None,
        resources_list_changed=True if requested.resources_list_changed else None,
        resource_subscriptions=list(requested.resource_subscriptions)
        if requested.resource_subscriptions
        else None,
        **extension,
    )


def _notification(item: ServerEvent | TaskState, meta: dict[str, Any]) -> ServerNotification:
    """The stamped frame for one buffered item."""
    if not isinstance(item, TaskState):
        return event_to_notification(item, meta)
    task_meta = item.task.get("_meta")
    params = {**item.task, "_meta": {**(task_meta if isinstance(task_meta, dict) else {}), **meta}}
    # ServerSession.send_notification sends any model's dump (method, params), whatever its annotation
    # (a union of the SDK's own notifications) says
    return cast(ServerNotification, TaskNotification(params=params))
