"""The fast path answers the tasks extension exactly as the SDK path does.

Two real supervisors with their task queues, one with the fast path and one with ``fast_path = false``;
every request below goes to both and the answers must be equal — a created task's id and times aside,
which differ by nature (the test compares their shape). ``/status`` then shows which side answered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RunningSupervisor

from .test_fastpath import META, Case, answer, assert_same_answers, fast_and_sdk, posts

TASKS = "io.modelcontextprotocol/tasks"
DECLARED = {**META, "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}}}
UNKNOWN = "mcp-unknown-0000000000000000"


def task_case(name: str, method: str, task_id: str, *, fast: bool = True, **overrides: Any) -> Case:
    params: dict[str, Any] = {"taskId": task_id, "_meta": overrides.pop("meta", DECLARED)}
    if method == "tasks/update":
        params["inputResponses"] = {}
    headers = {"mcp-name": task_id, **overrides.pop("headers", {})}
    return Case(name, method, params, fast=fast, headers=headers)


CASES = [
    task_case("get of an unknown task", "tasks/get", UNKNOWN),
    task_case("update of an unknown task", "tasks/update", UNKNOWN),
    task_case("cancel of an unknown task", "tasks/cancel", UNKNOWN),
    task_case("get without the extension", "tasks/get", UNKNOWN, fast=False, meta=META),
    task_case("Mcp-Name not the task id", "tasks/get", UNKNOWN, fast=False, headers={"mcp-name": "other"}),
    Case("a removed v1 method", "tasks/result", {"taskId": UNKNOWN, "_meta": DECLARED}, fast=False),
    Case(
        "a required task tool without the extension",
        "tools/call",
        {"name": "tk_once", "arguments": {"n": 1, "log": "/dev/null"}},
        fast=False,
    ),
    Case(
        "an optional task tool without the extension",
        "tools/call",
        {"name": "tk_quick", "arguments": {"text": "a"}},
    ),
]
CREATE = Case(
    "a task created", "tools/call", {"name": "tk_quick", "arguments": {"text": "a"}, "_meta": DECLARED}
)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RunningSupervisor, RunningSupervisor]]:
    with fast_and_sdk("--tools", "tests.integration.task_tools") as pair:
        yield pair


def test_every_task_answer_is_the_sdk_paths(servers: tuple[RunningSupervisor, RunningSupervisor]) -> None:
    assert_same_answers(*servers, CASES)


def test_a_created_task_has_the_same_shape_on_both_paths(
    servers: tuple[RunningSupervisor, RunningSupervisor],
) -> None:
    fast, sdk = servers
    before = posts(fast)
    answers = [answer(server, CREATE) for server in (fast, sdk)]
    assert posts(fast)["fast_path"] - before["fast_path"] == 1
    shapes = []
    for status, content_type, body in answers:
        result = body["result"]
        assert re.fullmatch(r"mcp-[A-Za-z0-9_-]{24}", result["taskId"]), result
        assert result["resultType"] == "task" and result["status"] == "working"
        shapes.append((status, content_type, {key: type(value).__name__ for key, value in result.items()}))
    assert shapes[0] == shapes[1]
