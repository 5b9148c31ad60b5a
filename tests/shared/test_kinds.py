"""Tests of shared/kinds.py (the decorators), shared/entry_spec.py and shared/kind_results.py, and of the
worker host preparing, running and rendering every kind (tests/toolmods/kind_entries.py)."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import (
    EntryRegistry,
    ToolDefinitionError,
    completion_metadata,
    get_entry_registry,
    prompt_metadata,
    resource_metadata,
)
from shared.errors import INTERNAL_ERROR, InvalidArgumentsError
from shared.kind_results import to_complete_result, to_get_prompt_result, to_read_resource_result
from shared.kinds import completion_key, entry_ref
from shared.metadata import ToolMetadataRegistry
from shared.protocol import DEFAULT_MAX_MESSAGE_SIZE, Call, Error, Message, ResourceUpdated, Result, decode
from shared.worker.host import ToolHost

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def entries(monkeypatch: pytest.MonkeyPatch, global_registry_guard: ToolMetadataRegistry) -> Iterator[None]:
    """tests/toolmods importable; afterwards the modules and the entries they declared are forgotten."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    registry = get_entry_registry()
    before = {entry.ref for entry, _ in registry.list_all()}
    yield
    for entry, _ in registry.list_all():
        if entry.ref not in before:
            registry.unregister(entry.ref)
    for name in [name for name in sys.modules if name.startswith("toolmods")]:
        del sys.modules[name]


def test_decorators_register_each_kind_with_its_key_and_read_only_by_default() -> None:
    registry = EntryRegistry()

    @resource_metadata(uri="a://b", registry=registry, timeout_seconds=5)
    def res() -> str:
        return ""

    @resource_metadata(uri_template="a://{x}", registry=registry, read_only=False)
    def tpl(x: str) -> str:
        return x

    @prompt_metadata(registry=registry, runtime="trio")
    def hello() -> str:
        return ""

    @completion_metadata(prompt="hello", argument="x", registry=registry)
    def values(value: str) -> list[str]:
        return []

    by_ref = {entry.ref: entry for entry, _ in registry.list_all()}
    assert set(by_ref) == {
        "resource:a://b",
        "resource_template:a://{x}",
        "prompt:hello",
        entry_ref("completion", completion_key("prompt", "hello", "x")),
    }
    assert by_ref["resource:a://b"].run.timeout_seconds == 5 and by_ref["resource:a://b"].run.read_only
    assert by_ref["resource_template:a://{x}"].run.read_only is False
    assert by_ref["prompt:hello"].run.runtime == "trio" and by_ref["prompt:hello"].run.name == "prompt.hello"
    assert entry_ref("tool", "echo") == "echo"


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda r: resource_metadata(registry=r), "exactly one of uri= and uri_template="),
        (lambda r: resource_metadata(uri="x://", uri_template="x://{y}", registry=r), "exactly one of"),
        (lambda r: completion_metadata(argument="a", registry=r), "exactly one of prompt= and"),
        (lambda r: prompt_metadata(registry=r, colour="red"), "unknown field(s) colour"),
        (lambda r: resource_metadata(uri="x://", registry=r, runtime="gpu"), "runtime='gpu' is invalid"),
    ],
)
def test_invalid_declarations_are_refused(declare: Callable[[EntryRegistry], Any], message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        declare(EntryRegistry())(lambda: None)


def test_the_same_uri_twice_is_refused() -> None:
    registry = EntryRegistry()
    resource_metadata(uri="x://a", registry=registry)(lambda: "a")
    with pytest.raises(ToolDefinitionError, match="resource 'x://a' is declared twice"):
        resource_metadata(uri="x://a", registry=registry)(lambda: "b")


def test_rendering_follows_the_sdk() -> None:
    assert to_read_resource_result("hi", None) == {"contents": [{"mimeType": "text/plain", "text": "hi"}]}
    assert to_read_resource_result(b"\x01", "image/png") == {
        "contents": [{"mimeType": "image/png", "blob": base64.b64encode(b"\x01").decode()}]
    }
    assert to_read_resource_result({"a": 1}, "application/json")["contents"][0]["text"] == '{\n  "a": 1\n}'
    assert to_get_prompt_result(["hi", {"role": "assistant", "content": "yo"}], "d") == {
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "hi"}},
            {"role": "assistant", "content": {"type": "text", "text": "yo"}},
        ],
        "description": "d",
    }
    with pytest.raises(ValueError, match="role 'user' or 'assistant'"):
        to_get_prompt_result({"role": "system", "content": "x"}, None)
    many = [str(i) for i in range(150)]
    completion = to_complete_result(many)["completion"]
    assert (len(completion["values"]), completion["total"], completion["hasMore"]) == (100, 150, True)
    assert to_complete_result(None) == {"completion": {"values": []}}
    with pytest.raises(TypeError):
        to_complete_result(42)


def run_entry(
    host: ToolHost, kind: str, key: str, arguments: dict[str, Any]
) -> tuple[Message, list[Message]]:
    emitted: list[Message] = []
    prepared = host.prepare(Call(1, key, arguments, None, None, None, kind), emitted.append)

    async def run_inline(func: Callable[[], Any]) -> Any:
        return func()

    return decode(asyncio.run(host.run(prepared, run_inline))), emitted


def test_the_host_announces_runs_and_renders_every_kind(entries: None) -> None:
    host = ToolHost("asyncio-0", "asyncio", ["toolmods.kind_entries"], DEFAULT_MAX_MESSAGE_SIZE)
    host.load()
    catalog = {entry.get("key"): entry for entry in host.ready().catalog if entry.get("kind")}
    assert catalog["ut://text"]["mcp"] == {
        "uri": "ut://text",
        "name": "ut_text",
        "description": "Some text.",
        "mimeType": "text/markdown",
    }
    assert catalog["ut_prompt"]["mcp"]["arguments"] == [
        {"name": "topic", "required": True},
        {"name": "style", "required": False},
    ]
    assert host.elsewhere["resource_template:ut://users/{id}"] == "trio"

    text, emitted = run_entry(host, "resource", "ut://text", {})
    assert isinstance(text, Result) and text.result == {
        "contents": [{"mimeType": "text/markdown", "text": "# hello"}]
    }
    assert emitted == [ResourceUpdated("ut://text")]
    blob, _ = run_entry(host, "resource", "ut://blob", {})
    assert isinstance(blob, Result) and blob.result["contents"][0]["mimeType"] == "application/octet-stream"
    prompt, _ = run_entry(host, "prompt", "ut_prompt", {"topic": "cats"})
    assert isinstance(prompt, Result) and prompt.result["description"] == "Talk about a topic."
    assert prompt.result["messages"][1] == {
        "role": "assistant",
        "content": {"type": "text", "text": "in a plain style"},
    }
    key = completion_key("prompt", "ut_prompt", "topic")
    done, _ = run_entry(host, "completion", key, {"value": "ca", "context": {"style": "x"}})
    assert isinstance(done, Result) and done.result["completion"]["values"] == ["cats", "cars"]
    failed, _ = run_entry(host, "resource", "ut://fails", {})
    assert isinstance(failed, Error) and failed.code == INTERNAL_ERROR
    assert failed.message == "resource 'ut://fails' failed: RuntimeError: no luck"
    with pytest.raises(InvalidArgumentsError):
        host.prepare(Call(2, "ut_prompt", {}, None, None, None, "prompt"), lambda message: None)


def test_two_functions_of_one_name_keep_their_own_runtime() -> None:
    from shared.entry_spec import build_entry_spec

    registry = EntryRegistry()

    def read() -> str:
        return "a"

    def read_too() -> str:
        return "b"

    read_too.__name__ = "read"
    resource_metadata(uri="x://trio", runtime="trio", registry=registry)(read)
    resource_metadata(uri="x://asyncio", runtime="asyncio", registry=registry)(read_too)
    runtimes = {entry.key: build_entry_spec(func, entry).runtime for entry, func in registry.list_all()}
    assert runtimes == {"x://trio": "trio", "x://asyncio": "asyncio"}
