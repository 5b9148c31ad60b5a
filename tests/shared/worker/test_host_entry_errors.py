"""Tests of how shared/worker/host.py answers an entry that is not a tool and refuses a request: a
``ClientRequestError`` keeps its code, message and data (an ERROR frame), any other exception is -32603,
and a tool keeps its ``isError`` result. Also the internal ``tasks`` kind (shared.kinds.internal_entry)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from shared.errors import INTERNAL_ERROR, INVALID_PARAMS, ClientRequestError
from shared.kind_results import to_kind_result
from shared.kinds import KINDS, get_entry_registry, internal_entry, resource_metadata
from shared.metadata import ToolMetadata, ToolMetadataRegistry, tool_metadata
from shared.protocol import DEFAULT_MAX_MESSAGE_SIZE, Call, Error, Message, Result, decode
from shared.worker.host import ToolHost


@pytest.fixture
def entries(global_registry_guard: ToolMetadataRegistry) -> Iterator[None]:
    registry = get_entry_registry()
    before = {entry.ref for entry, _ in registry.list_all()}
    yield
    for entry, _ in registry.list_all():
        if entry.ref not in before:
            registry.unregister(entry.ref)


def host() -> ToolHost:
    loaded = ToolHost("trio-0", "trio", ["shared.worker.builtin_tools"], DEFAULT_MAX_MESSAGE_SIZE)
    loaded.load()
    return loaded


def run(loaded: ToolHost, kind: str, key: str, arguments: dict[str, Any]) -> Message:
    emitted: list[Message] = []
    prepared = loaded.prepare(Call(7, key, arguments, None, None, None, kind), emitted.append)

    async def inline(func: Callable[[], Any]) -> Any:
        return func()

    return decode(trio.run(loaded.run, prepared, inline))


def test_a_client_request_error_of_another_kind_keeps_its_code_message_and_data(entries: None) -> None:
    @resource_metadata(uri="ut://refuses", runtime="trio")
    async def refuses() -> str:
        raise ClientRequestError("unknown task 'x'", INVALID_PARAMS, {"taskId": "x"})

    assert run(host(), "resource", "ut://refuses", {}) == Error(
        7, INVALID_PARAMS, "unknown task 'x'", {"taskId": "x"}
    )


def test_any_other_exception_of_another_kind_is_an_internal_error(entries: None) -> None:
    @resource_metadata(uri="ut://breaks", runtime="trio")
    async def breaks() -> str:
        raise RuntimeError("boom")

    answer = run(host(), "resource", "ut://breaks", {})
    assert isinstance(answer, Error) and answer.code == INTERNAL_ERROR
    assert answer.message == "resource 'ut://breaks' failed: RuntimeError: boom"


def test_a_tool_raising_a_client_request_error_still_answers_an_error_result(entries: None) -> None:
    @tool_metadata(runtime="trio")
    async def ut_refusing_tool() -> str:
        raise ClientRequestError("refused", INVALID_PARAMS)

    answer = run(host(), "tool", "ut_refusing_tool", {})
    assert isinstance(answer, Result) and answer.result["isError"] is True


def test_an_internal_tasks_entry_is_served_unlisted_and_answers_its_dict_unchanged(entries: None) -> None:
    async def peek(task_id: str) -> dict[str, Any]:
        return {"taskId": task_id, "status": "working", "resultType": "kept"}

    internal_entry("tasks", "peek", peek, ToolMetadata(name="tasks.peek", runtime="trio", read_only=True))
    loaded = host()
    [entry] = [e for e in loaded.ready().catalog if e.get("kind") == "tasks" and e["key"] == "peek"]
    assert entry["key"] == "peek" and not entry.get("listing")
    assert "tasks" in KINDS
    assert run(loaded, "tasks", "peek", {"task_id": "mcp-1"}) == Result(
        7, {"taskId": "mcp-1", "status": "working", "resultType": "kept"}
    )
    assert to_kind_result("tasks", {"a": 1}, None) == {"a": 1}
    with pytest.raises(TypeError):
        to_kind_result("tasks", [1], None)
