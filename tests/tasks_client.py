"""The MCP tasks extension on the official SDK's client, for the tests (the SDK does not ship one).

``TasksExtension`` is a ``ClientExtension``: it declares ``io.modelcontextprotocol/tasks`` on every request
and claims ``resultType: "task"``, so ``Client.call_tool`` polls ``tasks/get`` until the task ends and
returns its ``CallToolResult``; ``client.session.call_tool(..., allow_claimed=True)`` returns the
``CreateTaskResult`` itself. ``get_task``, ``update_task`` and ``cancel_task`` send the extension's methods
through the SDK's session (``Mcp-Name`` is the task id, as SEP-2663 requires).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import ConfigDict, Field

TASKS = "io.modelcontextprotocol/tasks"
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class CreateTaskResult(Result):
    """The answer of a ``tools/call`` that became a task (``resultType: "task"``, flat)."""

    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"] = Field("task", alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")
    input_responses: dict[str, Any] | None = Field(None, alias="inputResponses")


class GetTask(Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param: ClassVar[str | None] = "taskId"


class UpdateTask(Request[TaskParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    name_param: ClassVar[str | None] = "taskId"


class CancelTask(Request[TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param: ClassVar[str | None] = "taskId"


class AnyResult(Result):
    model_config = ConfigDict(extra="allow")


async def get_task(session: ClientSession, task_id: str) -> dict[str, Any]:
    """``tasks/get``: the task as the server answers it (a ``DetailedTask`` with ``resultType``)."""
    answer = await session.send_request(
        GetTask(params=TaskParams(taskId=task_id, inputResponses=None)), AnyResult
    )
    return answer.model_dump(by_alias=True, exclude_none=True)


async def update_task(session: ClientSession, task_id: str, responses: dict[str, Any]) -> dict[str, Any]:
    """``tasks/update`` with ``inputResponses``: the acknowledgement."""
    params = TaskParams(taskId=task_id, inputResponses=responses)
    return (await session.send_request(UpdateTask(params=params), AnyResult)).model_dump(by_alias=True)


async def cancel_task(session: ClientSession, task_id: str) -> dict[str, Any]:
    """``tasks/cancel``: the acknowledgement."""
    answer = await session.send_request(
        CancelTask(params=TaskParams(taskId=task_id, inputResponses=None)), AnyResult
    )
    return answer.model_dump(by_alias=True)


async def wait_for_task(
    session: ClientSession, task_id: str, statuses: frozenset[str] = TERMINAL, deadline: float = 30.0
) -> dict[str, Any]:
    """Poll ``tasks/get`` until the task's status is one of ``statuses`` (fails after ``deadline``)."""
    with anyio.fail_after(deadline):
        while True:
            task = await get_task(session, task_id)
            if task["status"] in statuses:
                return task
            await anyio.sleep(0.05)


class TasksExtension(ClientExtension):
    """Declares the extension and finishes a task's ``tools/call`` by polling it to its end."""

    identifier = TASKS

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=self._finish)]

    @staticmethod
    async def _finish(created: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
        task = await wait_for_task(ctx.session, created.task_id, deadline=ctx.read_timeout_seconds or 60.0)
        if task["status"] == "completed":
            return CallToolResult.model_validate(task["result"])
        error = task.get("error") or {"code": -32603, "message": task.get("statusMessage", task["status"])}
        raise MCPError(error["code"], f"task {created.task_id} {task['status']}: {error['message']}")


async def start_task_call(client: Any, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call a task-capable ``tool`` and return the ``CreateTaskResult`` it answers with (``client`` is an
    ``mcp.Client`` built with ``TasksExtension``)."""
    created = await client.session.call_tool(tool, arguments or {}, allow_claimed=True)
    answer: dict[str, Any] = created.model_dump(by_alias=True, exclude_none=True)
    if answer.get("resultType") != "task":
        raise AssertionError(f"{tool} did not create a task: {answer}")
    return answer


def assert_ended_as_recovery_allows(final: dict[str, dict[str, Any]], tools: dict[str, str]) -> None:
    """Every task of ``final`` (task id → its last ``tasks/get``) ended after a crash as the recovery rules
    allow for its tool (``tools``: task id → tool name): ``tk_again`` (idempotent) completed, run again;
    any other completed, or failed with -32603 saying the server restarted."""
    assert all(task["status"] in TERMINAL for task in final.values())
    for task_id, tool in tools.items():
        task = final[task_id]
        if tool == "tk_again":
            assert task["status"] == "completed", task
        else:
            assert task["status"] in ("completed", "failed"), task
            if task["status"] == "failed":
                assert task["error"]["code"] == -32603 and "restarted" in task["error"]["message"], task
