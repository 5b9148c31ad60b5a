"""The front's decisions about MCP tasks (``supervisor.tasks_front``): which call becomes a task, which
``tasks/*`` request passes, and what the task queue is asked."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import ClientRequestError, UnknownToolError
from shared.principal import Principal
from supervisor.catalog import Catalog
from supervisor.tasks_front import (
    AFTER_INPUT,
    PLAIN,
    TASK,
    TASKS_EXTENSION,
    check_task_request,
    client_of,
    create_task,
    plan_call,
    task_request,
)

from .fakes import tool_entry

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
SESSION = "2025-11-25"
DECLARED = {"io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
UNDECLARED: dict[str, Any] = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}


def queue_entry(key: str) -> dict[str, Any]:
    return {"kind": "tasks", "key": key, "name": key, "metadata": {"name": f"tasks.{key}", "runtime": "trio"}}


def catalog(*, queue: bool = True) -> Catalog:
    built = Catalog(["asyncio", "trio-queue"])
    built.take(
        "asyncio",
        [
            tool_entry("plain"),
            tool_entry("maybe", task_support="optional"),
            tool_entry("always", task_support="required", idempotent=True),
            tool_entry("asks_first", task_support="required", task_after_input=True),
        ],
        [],
        {},
    )
    built.take("trio-queue", [queue_entry("create"), queue_entry("get")] if queue else [], [], {})
    return built


def test_issue_17_a_quarantined_tool_is_a_plain_call_so_the_router_refuses_it_and_no_task_is_made() -> None:
    tools = catalog()
    changes: list[frozenset[str]] = []
    tools.on_change = lambda: changes.append(tools.last_changed)
    tools.set_quarantined(frozenset({"maybe", "always", "asks_first"}))
    for name in ("maybe", "always", "asks_first"):
        assert plan_call(tools, name, MODERN, DECLARED) == PLAIN
    assert plan_call(tools, "always", MODERN, UNDECLARED) == PLAIN  # no -32021 either: the refusal says why
    assert [entry["name"] for entry in tools.tools()] == ["plain"]  # dropped from tools/list ...
    assert tools.tool("maybe") is not None and "maybe" in tools.task_support  # ... but still known
    assert changes == [frozenset({"tool"})]
    tools.set_quarantined(frozenset())
    assert plan_call(tools, "maybe", MODERN, DECLARED) == TASK
    assert len(tools.tools()) == 4 and changes == [frozenset({"tool"})] * 2


def test_only_a_declaring_modern_request_makes_tasks() -> None:
    tools = catalog()
    assert plan_call(tools, "plain", MODERN, DECLARED) == PLAIN
    assert plan_call(tools, "maybe", MODERN, DECLARED) == TASK
    assert plan_call(tools, "maybe", MODERN, UNDECLARED) == PLAIN
    assert plan_call(tools, "maybe", SESSION, DECLARED) == PLAIN
    assert plan_call(tools, "always", MODERN, DECLARED) == TASK
    assert plan_call(tools, "asks_first", MODERN, DECLARED) == AFTER_INPUT


@pytest.mark.parametrize(("version", "meta"), [(MODERN, UNDECLARED), (MODERN, None), (SESSION, DECLARED)])
def test_a_required_task_without_the_extension_is_minus_32021_naming_it(
    version: str, meta: dict[str, Any] | None
) -> None:
    with pytest.raises(ClientRequestError) as refused:
        plan_call(catalog(), "always", version, meta)
    assert refused.value.code == -32021
    assert "always" in str(refused.value) and TASKS_EXTENSION in str(refused.value)
    assert refused.value.data == {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}


def test_without_a_task_queue_an_optional_tool_runs_plain_and_a_required_one_says_why() -> None:
    tools = catalog(queue=False)
    assert plan_call(tools, "maybe", MODERN, DECLARED) == PLAIN
    with pytest.raises(ClientRequestError, match="task_queue = false"):
        plan_call(tools, "always", MODERN, DECLARED)


def test_a_task_request_passes_with_the_extension_and_the_task_id_header() -> None:
    headers = {"mcp-name": " t-1 "}  # the whitespace around a field value is not part of it (RFC 9110)
    assert check_task_request("tasks/get", {"taskId": "t-1"}, MODERN, DECLARED, headers) == {"task_id": "t-1"}
    assert check_task_request("tasks/cancel", {"taskId": "t-1"}, MODERN, DECLARED, None) == {"task_id": "t-1"}
    update = check_task_request(
        "tasks/update", {"taskId": "t-1", "inputResponses": {"k": {}}}, MODERN, DECLARED, None
    )
    assert update == {"task_id": "t-1", "input_responses": {"k": {}}}


@pytest.mark.parametrize(
    ("method", "params", "version", "meta", "headers", "code"),
    [
        ("tasks/get", {"taskId": "t-1"}, SESSION, DECLARED, None, -32601),
        ("tasks/get", {"taskId": "t-1"}, MODERN, UNDECLARED, None, -32021),
        ("tasks/update", {"taskId": "t-1", "inputResponses": {}}, MODERN, UNDECLARED, None, -32021),
        ("tasks/get", {"taskId": "t-1"}, MODERN, DECLARED, {"mcp-name": "t-2"}, -32020),
        ("tasks/get", {"taskId": "t-1"}, MODERN, DECLARED, {}, -32020),
        ("tasks/get", {"taskId": 7}, MODERN, DECLARED, None, -32602),
        ("tasks/update", {"taskId": "t-1", "inputResponses": None}, MODERN, DECLARED, None, -32602),
    ],
)
def test_a_task_request_that_fails_a_check_says_which(
    method: str,
    params: dict[str, Any],
    version: str,
    meta: dict[str, Any],
    headers: dict[str, str] | None,
    code: int,
) -> None:
    with pytest.raises(ClientRequestError) as refused:
        check_task_request(method, params, version, meta, headers)
    assert refused.value.code == code


class RecordingRouter:
    """Records what the front asks the task queue; answers like it."""

    request_timeout = 30.0

    def __init__(self, tools: Catalog, answer: dict[str, Any] | Exception) -> None:
        self.catalog = tools
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    async def call(
        self, name: str, arguments: dict[str, Any], *, timeout: float, kind: str
    ) -> dict[str, Any]:
        self.calls.append((name, arguments, kind))
        if isinstance(self.answer, Exception):
            raise self.answer
        return dict(self.answer)


async def test_creating_a_task_hands_the_queue_the_call_and_whether_it_may_run_again() -> None:
    task = {"taskId": "mcp-x", "status": "working"}
    router = RecordingRouter(catalog(), task)
    client = {"capabilities": {"extensions": {TASKS_EXTENSION: {}}}, "protocolVersion": MODERN}
    created = await create_task(router, "always", {"n": 1}, client, {"k": {"q": None, "r": {}}})  # type: ignore[arg-type]
    assert created == {**task, "resultType": "task"}
    name, arguments, kind = router.calls[0]
    assert (name, kind) == ("create", "tasks")
    assert arguments == {
        "tool": "always",
        "arguments": {"n": 1},
        "client": client,
        "answers": {"k": {"q": None, "r": {}}},
        "run_again": True,  # idempotent
    }
    await create_task(router, "maybe", None, client)  # type: ignore[arg-type]
    assert router.calls[1][1]["run_again"] is False and router.calls[1][1]["arguments"] == {}


async def test_a_task_request_answers_complete_and_the_queue_s_refusal_keeps_its_code() -> None:
    router = RecordingRouter(catalog(), {"taskId": "mcp-x", "status": "working"})
    answer = await task_request(router, "tasks/get", {"task_id": "mcp-x"})  # type: ignore[arg-type]
    assert answer["resultType"] == "complete" and router.calls[0][:1] == ("get",)

    router.answer = UnknownToolError("unknown task 'mcp-y'")
    with pytest.raises(ClientRequestError) as refused:
        await task_request(router, "tasks/cancel", {"task_id": "mcp-y"})  # type: ignore[arg-type]
    assert refused.value.code == -32602 and "mcp-y" in str(refused.value)


def test_a_task_keeps_its_principal_and_a_task_request_names_the_asker() -> None:
    alice = Principal("alice", frozenset({"mcp:use"}), {"email": "a@example.org"})
    client = client_of(MODERN, DECLARED, alice)
    assert client["principal"] == {
        "subject": "alice",
        "scopes": ["mcp:use"],
        "claims": {"email": "a@example.org"},
    }
    assert "principal" not in client_of(MODERN, DECLARED)  # authorization off
    asked = check_task_request("tasks/get", {"taskId": "t-1"}, MODERN, DECLARED, None, alice)
    assert asked == {"task_id": "t-1", "owner": "alice"}
