"""Tests of shared/worker/host.py: loading tool modules, preparing calls and the frames that answer them.

The tool modules live in tests/toolmods/. Importing one registers its tools in the process-wide registry;
the ``toolmods`` fixture puts tests/ on ``sys.path`` and afterwards forgets both the modules and the tools,
so every test imports them afresh.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from shared.context import TASK_RUN_META
from shared.errors import INTERNAL_ERROR, INVALID_PARAMS, InvalidArgumentsError, UnknownToolError
from shared.metadata import ToolMetadataRegistry, tool_metadata
from shared.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    PROTOCOL_VERSION,
    Call,
    CatalogChanged,
    Error,
    Log,
    Message,
    Progress,
    Ready,
    Result,
    decode,
    encode,
)
from shared.worker.host import DEFAULT_TOOL_MODULES, PreparedCall, ToolHost

TESTS_DIR = Path(__file__).resolve().parents[2]
SAMPLE = "toolmods.sample_tools"
ASYNCIO_TOOLS = {"ut_echo", "ut_asyncio_wait", "ut_sync_add", "ut_fail", "ut_big", "ut_opaque"}
TRIO_TOOLS = {"ut_trio_double", "ut_trio_wait"}


@pytest.fixture(autouse=True)
def toolmods(monkeypatch: pytest.MonkeyPatch, global_registry_guard: ToolMetadataRegistry) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    yield
    for name in [name for name in sys.modules if name == "toolmods" or name.startswith("toolmods.")]:
        del sys.modules[name]


def loaded_host(
    runtime: str = "asyncio",
    modules: tuple[str, ...] = (SAMPLE,),
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> ToolHost:
    host = ToolHost(f"{runtime}-0", runtime, list(modules), max_message_size)  # type: ignore[arg-type]
    host.load()
    return host


def ut_names(names: Any) -> set[str]:
    """Only this file's tools: the process-wide registry may hold others."""
    return {name for name in names if name.startswith("ut_")}


def call(tool: str, arguments: dict[str, Any] | None = None, **fields: Any) -> Call:
    values: dict[str, Any] = {"timeout": None, "progress_token": None, "meta": None, **fields}
    return Call(1, tool, arguments or {}, values["timeout"], values["progress_token"], values["meta"])


def decode_result(frame: bytes) -> Result:
    message = decode(frame)
    assert isinstance(message, Result)
    return message


def result_text(frame: bytes) -> str:
    [block] = decode_result(frame).result["content"]
    return str(block["text"])


def discard(message: Message) -> None:
    """An ``emit`` for calls whose messages the test does not look at."""


async def run_inline(func: Callable[[], Any]) -> Any:
    """A ``run_sync`` for asyncio tests: calls the sync tool right away."""
    return func()


# -- load ------------------------------------------------------------------------------------------


def test_asyncio_host_keeps_only_asyncio_tools() -> None:
    host = loaded_host("asyncio")

    assert ut_names(host.tools) == ASYNCIO_TOOLS
    assert all(spec.runtime == "asyncio" for spec in host.tools.values())
    assert host.load_errors == []


def test_trio_host_keeps_only_trio_tools() -> None:
    host = loaded_host("trio")

    assert ut_names(host.tools) == TRIO_TOOLS
    assert all(spec.runtime == "trio" for spec in host.tools.values())


def test_tools_of_the_other_runtime_are_named_in_elsewhere() -> None:
    asyncio_host = loaded_host("asyncio")
    trio_host = loaded_host("trio")

    assert {name: asyncio_host.elsewhere[name] for name in ut_names(asyncio_host.elsewhere)} == dict.fromkeys(
        TRIO_TOOLS, "trio"
    )
    assert {name: trio_host.elsewhere[name] for name in ut_names(trio_host.elsewhere)} == dict.fromkeys(
        ASYNCIO_TOOLS, "asyncio"
    )


def test_no_module_configured_means_the_builtin_tools() -> None:
    assert ToolHost("asyncio-0", "asyncio", [], DEFAULT_MAX_MESSAGE_SIZE).modules == list(
        DEFAULT_TOOL_MODULES
    )


def test_configured_modules_replace_the_builtin_tools_as_the_readme_says_issue_17(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's ``my_tools`` example silently dropped ``echo`` and the others: it says so now, and how
    to keep them."""
    monkeypatch.delitem(sys.modules, DEFAULT_TOOL_MODULES[0], raising=False)  # import (register) it here
    assert "echo" not in loaded_host(modules=(SAMPLE,)).tools
    assert {"echo", "ut_echo"} <= set(loaded_host(modules=(SAMPLE, *DEFAULT_TOOL_MODULES)).tools)
    own_tools = (TESTS_DIR.parent / "README.md").read_text().split("## Your own tools", 1)[1]
    assert "**replace** the default tools" in own_tools
    assert f"--tools my_tools --tools {DEFAULT_TOOL_MODULES[0]}" in own_tools


def errors_about(host: ToolHost, text: str) -> list[str]:
    return [error for error in host.load_errors if text in error]


def test_module_failing_to_import_becomes_one_load_error_line() -> None:
    host = loaded_host(modules=("toolmods.broken_import", SAMPLE))

    [error] = errors_about(host, "toolmods.broken_import")
    assert error == (
        "tool module 'toolmods.broken_import' failed to import: "
        "RuntimeError: broken on purpose second line of the message"
    )
    assert ut_names(host.tools) == ASYNCIO_TOOLS


def test_missing_module_becomes_one_load_error_line() -> None:
    host = loaded_host(modules=(SAMPLE, "toolmods.does_not_exist"))

    [error] = errors_about(host, "toolmods.does_not_exist")
    assert error.startswith("tool module 'toolmods.does_not_exist' failed to import: ModuleNotFoundError: ")
    assert "\n" not in error
    assert ut_names(host.tools) == ASYNCIO_TOOLS


def test_module_calling_sys_exit_does_not_end_the_worker() -> None:
    host = loaded_host(modules=("toolmods.exits_on_import", SAMPLE))

    assert errors_about(host, "toolmods.exits_on_import") == [
        "tool module 'toolmods.exits_on_import' failed to import: SystemExit: 3"
    ]
    assert ut_names(host.tools) == ASYNCIO_TOOLS


def test_load_errors_are_logged_with_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="mcp_supervisor.worker"):
        loaded_host(modules=("toolmods.broken_import",))

    [record] = [r for r in caplog.records if "toolmods.broken_import" in r.getMessage()]
    assert record.exc_info is not None


def test_tool_that_cannot_become_a_tool_is_a_load_error_naming_it() -> None:
    host = loaded_host(modules=("toolmods.bad_definition", SAMPLE))

    [varargs] = errors_about(host, "'ut_varargs'")
    assert "*args and **kwargs" in varargs
    assert "ut_varargs" not in host.tools
    assert ut_names(host.tools) == ASYNCIO_TOOLS


def test_every_load_error_is_one_line() -> None:
    """Load errors travel in READY and are shown one per line; pydantic's schema errors span several."""
    host = loaded_host(modules=("toolmods.bad_definition", "toolmods.broken_import"))

    assert errors_about(host, "'ut_unschemable'") != []
    assert all("\n" not in error for error in host.load_errors)


def test_ready_announces_catalog_errors_and_elsewhere_and_encodes() -> None:
    host = loaded_host("trio", modules=(SAMPLE, "toolmods.does_not_exist"))

    ready = decode(encode(host.ready()))

    assert isinstance(ready, Ready)
    assert ready.worker_id == "trio-0"
    assert ready.pool == "trio"
    assert ready.protocol_version == PROTOCOL_VERSION
    assert ut_names(entry["name"] for entry in ready.catalog) == TRIO_TOOLS
    assert errors_about(host, "does_not_exist") == errors_about(ready, "does_not_exist")  # type: ignore[arg-type]
    assert ready.elsewhere["ut_echo"] == "asyncio"


def test_a_context_announces_entries_registered_at_run_time() -> None:
    """``ctx.announce_catalog()``: a tool decorated after start is built, served and announced, and the
    import errors of the start are announced again with it."""
    host = loaded_host("asyncio", modules=(SAMPLE, "toolmods.does_not_exist"))
    sent: list[Message] = []
    prepared = host.prepare(call("ut_echo", {"message": "x"}), sent.append)

    @tool_metadata(runtime="asyncio")
    async def ut_added_later() -> str:
        return "later"

    prepared.context.announce_catalog()

    [changed] = [decode(encode(message)) for message in sent]
    assert isinstance(changed, CatalogChanged)
    assert ut_names(entry["name"] for entry in changed.catalog) == ASYNCIO_TOOLS | {"ut_added_later"}
    assert changed.elsewhere["ut_trio_double"] == "trio"
    assert errors_about(host, "does_not_exist") and errors_about(changed, "does_not_exist")  # type: ignore[arg-type]
    assert host.prepare(call("ut_added_later"), sent.append).spec.name == "ut_added_later"


# -- prepare ---------------------------------------------------------------------------------------


def test_prepare_refuses_an_unknown_tool_naming_it_and_the_worker() -> None:
    host = loaded_host("asyncio")

    with pytest.raises(UnknownToolError, match="unknown tool 'nope' on worker asyncio-0"):
        host.prepare(call("nope"), discard)


def test_prepare_refuses_a_tool_of_the_other_runtime() -> None:
    host = loaded_host("asyncio")

    with pytest.raises(UnknownToolError, match="'ut_trio_double'"):
        host.prepare(call("ut_trio_double", {"n": 1}), discard)


def test_prepare_refuses_invalid_arguments() -> None:
    host = loaded_host("asyncio")

    with pytest.raises(InvalidArgumentsError, match="missing required argument 'a'"):
        host.prepare(call("ut_sync_add", {"b": 2}), discard)


def test_error_frame_carries_code_and_message() -> None:
    host = loaded_host("asyncio")
    with pytest.raises(UnknownToolError) as caught:
        host.prepare(call("nope"), discard)

    message = decode(host.error_frame(9, caught.value))

    assert message == Error(9, INVALID_PARAMS, "unknown tool 'nope' on worker asyncio-0")


def test_prepare_validates_arguments_and_injects_the_context() -> None:
    host = loaded_host("asyncio")
    emitted: list[Message] = []

    prepared = host.prepare(
        call("ut_echo", {"message": "hi"}, progress_token="tok", meta={"a": 1}), emitted.append
    )

    assert prepared.call_id == 1
    assert prepared.kwargs == {"message": "hi", "ctx": prepared.context}
    assert prepared.context.tool == "ut_echo"
    assert prepared.context.worker_id == "asyncio-0"
    assert prepared.context.runtime == "asyncio"
    assert prepared.context.progress_token == "tok"
    assert prepared.context.meta == {"a": 1}
    prepared.context.log("info", "hello")
    assert emitted == [Log(1, "info", None, "hello")]


@pytest.mark.parametrize(
    ("tool", "arguments", "call_timeout", "expected"),
    [
        ("ut_trio_double", {"n": 1}, None, 5.0),  # the tool's own timeout
        ("ut_trio_double", {"n": 1}, 2.0, 2.0),  # the call's is earlier
        ("ut_trio_double", {"n": 1}, 9.0, 5.0),  # the tool's is earlier
    ],
)
def test_prepare_takes_the_earliest_timeout(
    tool: str, arguments: dict[str, Any], call_timeout: float | None, expected: float
) -> None:
    host = loaded_host("trio")

    prepared = host.prepare(call(tool, arguments, timeout=call_timeout), discard)

    assert prepared.timeout == expected
    assert prepared.context.deadline is not None
    remaining = prepared.context.time_remaining()
    assert remaining is not None and 0 < remaining <= expected


def test_a_tool_without_its_own_timeout_gets_the_servers_issue_17() -> None:
    """Its deadline was 30 s whatever ``request_timeout`` said: raising that setting changed nothing."""
    host = loaded_host("asyncio")

    prepared = host.prepare(call("ut_echo", {"message": "x"}, timeout=600.0), discard)

    assert prepared.timeout == 600.0


def test_prepare_without_any_timeout_has_no_deadline() -> None:
    host = loaded_host("asyncio")

    prepared = host.prepare(call("ut_sync_add", {"a": 1}), discard)

    assert prepared.timeout is None
    assert prepared.context.deadline is None


# -- run and result frames -------------------------------------------------------------------------


def test_asyncio_tool_runs_to_a_result_frame() -> None:
    host = loaded_host("asyncio")
    emitted: list[Message] = []
    prepared = host.prepare(call("ut_echo", {"message": "hi"}, progress_token=3), emitted.append)

    frame = asyncio.run(host.run(prepared, run_inline))

    assert decode_result(frame) == Result(
        1, {"content": [{"type": "text", "text": "asyncio-0: hi"}], "isError": False}
    )
    assert emitted == [Progress(1, 1.0, 1.0, None)]


def test_sync_tool_runs_through_run_sync() -> None:
    host = loaded_host("asyncio")
    prepared = host.prepare(call("ut_sync_add", {"a": "2", "b": 3}), discard)
    used: list[Callable[[], Any]] = []

    async def run_sync(func: Callable[[], Any]) -> Any:
        used.append(func)
        return func()

    frame = asyncio.run(host.run(prepared, run_sync))

    assert result_text(frame) == "5"
    assert used == [prepared.invoke]


def test_trio_tool_runs_to_a_result_frame() -> None:
    host = loaded_host("trio")
    prepared = host.prepare(call("ut_trio_double", {"n": 21}), discard)

    frame = trio.run(host.run, prepared, trio.to_thread.run_sync)

    assert result_text(frame) == "42"
    assert decode_result(frame).result["isError"] is False


def test_tool_exception_becomes_a_one_line_error_result(caplog: pytest.LogCaptureFixture) -> None:
    host = loaded_host("asyncio")
    prepared = host.prepare(call("ut_fail", {"reason": "disk\nfull   again"}), discard)

    with caplog.at_level(logging.ERROR, logger="mcp_supervisor.worker"):
        frame = asyncio.run(host.run(prepared, run_inline))

    result = decode_result(frame).result
    assert result["isError"] is True
    assert result_text(frame) == "tool 'ut_fail' failed: ValueError: disk full again"
    assert "Traceback" not in result_text(frame)
    [record] = [r for r in caplog.records if "ut_fail" in r.getMessage()]
    assert record.exc_info is not None


def test_cancelled_trio_call_marks_its_context_and_propagates() -> None:
    host = loaded_host("trio")
    prepared = host.prepare(call("ut_trio_wait"), discard)
    frames: list[bytes] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            frames.append(await host.run(prepared, trio.to_thread.run_sync))
        assert scope.cancelled_caught

    trio.run(main)

    assert frames == []
    assert prepared.context.cancelled


def test_cancelled_asyncio_call_marks_its_context_and_propagates() -> None:
    host = loaded_host("asyncio")

    async def main() -> PreparedCall:
        started = asyncio.Event()
        prepared = host.prepare(call("ut_asyncio_wait"), lambda message: started.set())
        task = asyncio.create_task(host.run(prepared, run_inline))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return prepared

    prepared = asyncio.run(main())

    assert prepared.context.cancelled


def test_result_frame_for_a_dict_has_structured_content() -> None:
    host = loaded_host("asyncio")
    prepared = host.prepare(call("ut_big", {"size": 1}), discard)

    result = decode_result(host.result_frame(prepared, {"answer": 42})).result

    assert result["structuredContent"] == {"answer": 42}
    assert result["isError"] is False


def test_unrepresentable_result_becomes_an_error_result() -> None:
    """Regression: a dict holding an object used to raise PydanticSerializationError out of result_frame."""
    host = loaded_host("asyncio")
    prepared = host.prepare(call("ut_opaque"), discard)

    frame = asyncio.run(host.run(prepared, run_inline))

    assert decode_result(frame).result["isError"] is True
    assert result_text(frame).startswith(
        "tool 'ut_opaque' failed: TypeError: tool returned a value JSON cannot"
    )


def test_oversized_result_becomes_an_error_result_naming_the_limit() -> None:
    host = loaded_host("asyncio", max_message_size=300)
    prepared = host.prepare(call("ut_big", {"size": 1000}), discard)

    frame = asyncio.run(host.run(prepared, run_inline))

    assert len(frame) <= 300
    assert decode_result(frame).result["isError"] is True
    text = result_text(frame)
    assert "'ut_big'" in text
    assert "over the limit of 300 bytes (max_message_size)" in text


def test_result_just_under_the_limit_is_sent() -> None:
    host = loaded_host("asyncio", max_message_size=300)
    prepared = host.prepare(call("ut_big", {"size": 200}), discard)

    frame = asyncio.run(host.run(prepared, run_inline))

    assert len(frame) <= 300
    assert result_text(frame) == "x" * 200


def test_failure_frame_is_one_line_with_the_exception_type() -> None:
    host = loaded_host("asyncio")
    prepared = host.prepare(call("ut_fail", {"reason": "x"}), discard)

    frame = host.failure_frame(prepared, KeyError("line one\nline two"))

    assert decode_result(frame) == Result(
        1,
        {
            "content": [{"type": "text", "text": "tool 'ut_fail' failed: KeyError: 'line one\\nline two'"}],
            "isError": True,
        },
    )


def test_failure_frame_for_an_exception_without_message() -> None:
    host = loaded_host("asyncio")
    prepared = host.prepare(call("ut_fail", {"reason": "x"}), discard)

    assert result_text(host.failure_frame(prepared, RuntimeError())) == (
        "tool 'ut_fail' failed: RuntimeError: (no message)"
    )


def test_timeout_frame_names_tool_and_timeout() -> None:
    host = loaded_host("trio")
    prepared = host.prepare(call("ut_trio_double", {"n": 1}, timeout=2.5), discard)

    frame = host.timeout_frame(prepared)

    assert decode_result(frame) == Result(
        1,
        {
            "content": [{"type": "text", "text": "tool 'ut_trio_double' timed out after 2.5 s"}],
            "isError": True,
        },
    )


def test_the_timeout_of_a_task_run_is_an_error_not_a_tool_result() -> None:
    host = loaded_host("trio")
    prepared = host.prepare(
        call("ut_trio_double", {"n": 1}, timeout=2.5, meta={TASK_RUN_META: True}), discard
    )

    assert decode(host.timeout_frame(prepared)) == Error(
        1, INTERNAL_ERROR, "tool 'ut_trio_double' timed out after 2.5 s", None
    )


def test_a_tool_file_is_imported_by_its_path_with_its_neighbours_issue_17(tmp_path: Path) -> None:
    """``--tools ./my_tools.py``: a desktop client starts the server in another working directory."""
    (tmp_path / "ut_file_helper.py").write_text("PREFIX = 'from a file'\n")
    (tmp_path / "ut_file_tools.py").write_text(
        "from shared.metadata import tool_metadata\n"
        "from ut_file_helper import PREFIX\n\n\n"
        "@tool_metadata(runtime='asyncio')\n"
        "async def ut_from_file() -> str:\n"
        "    return PREFIX\n"
    )
    try:
        host = loaded_host(modules=(str(tmp_path / "ut_file_tools.py"),))
        assert host.load_errors == [] and ut_names(host.tools) == {"ut_from_file"}
    finally:
        for name in ("ut_file_tools", "ut_file_helper"):
            sys.modules.pop(name, None)


def test_a_missing_tool_file_is_one_load_error_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "ut_nowhere.py")
    host = loaded_host(modules=(missing, SAMPLE))
    [error] = errors_about(host, "ut_nowhere")
    assert error.startswith(f"tool module {missing!r} failed to import: FileNotFoundError: ")
    assert "ut_nowhere" not in sys.modules and ut_names(host.tools) == ASYNCIO_TOOLS
