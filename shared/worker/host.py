"""The runtime-independent half of a worker: tool loading, call preparation and result frames.

``ToolHost`` imports the configured tool modules, keeps the entries of its own runtime (tools, resources,
resource templates, prompts, completion handlers: one table, keyed by ``shared.kinds.entry_ref``) and
turns every router message about a call into the frame the worker sends back. Every kind is prepared and
run alike; only the rendering of the result differs (``shared.results`` for tools,
``shared.kind_results`` for the others), and an exception from a tool is an ``isError`` result while one
from another kind is a protocol error: -32603 naming it, or, for a ``ClientRequestError``, its own code,
message and data. The asyncio and Trio workers only add
what their event loop requires: running the coroutine or the thread, deadlines and cancellation.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import pydantic_core

from ..context import TASK_RUN_META, ToolContext
from ..entry_spec import build_entry_spec
from ..errors import (
    INTERNAL_ERROR,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallError,
    ClientRequestError,
    MissingCapabilityError,
    ProtocolError,
    ToolDefinitionError,
    UnknownToolError,
)
from ..kind_results import to_kind_result
from ..kinds import get_entry_registry
from ..metadata import Runtime, get_registry
from ..protocol import PROTOCOL_VERSION, Call, CatalogChanged, Error, Message, Ready, Result, encode
from ..results import error_result, to_call_tool_result
from ..schema import ToolSpec, build_tool_spec
from .threads import ThreadLoad

DEFAULT_TOOL_MODULES = ("shared.worker.builtin_tools",)
"""Loaded when no tool module is configured."""

logger = logging.getLogger("mcp_supervisor.worker")


@dataclass(slots=True)
class PreparedCall:
    """A call that passed lookup and validation and is ready to run."""

    call_id: int
    spec: ToolSpec
    kwargs: dict[str, Any]
    context: ToolContext
    timeout: float | None

    def invoke(self) -> Any:
        """Call the function: a coroutine for an async tool, the result for a sync one."""
        return self.spec.func(**self.kwargs)


def import_tool_module(module: str) -> None:
    """Import ``module``: a dotted module name, or the path of a ``.py`` file (``--tools ./my_tools.py``,
    which a desktop client started in another working directory needs), imported under the file's stem
    with its directory first on ``sys.path`` so that it can import its neighbours.

    Raises:
        Whatever importing it raises (a missing file: ``FileNotFoundError``).
    """
    if not module.endswith(".py"):
        importlib.import_module(module)
        return
    path = Path(module)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for names not ending in .py
        raise ImportError(f"{module} is not a Python file")
    sys.path.insert(0, str(path.parent))
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[path.stem]
        raise


class ToolHost:
    """The tools of one worker process and the frames that answer calls to them."""

    def __init__(
        self,
        worker_id: str,
        runtime: Runtime,
        modules: Sequence[str],
        max_message_size: int,
        pool: str | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.runtime = runtime
        self.pool = pool or runtime
        """The group the router routes this worker's tools by (announced in READY)."""
        self.modules = list(modules) or list(DEFAULT_TOOL_MODULES)
        self.max_message_size = max_message_size
        self.tools: dict[str, ToolSpec] = {}
        """Every entry of this runtime by reference: a tool by its name, another kind by ``kind:key``."""
        self.load_errors: list[str] = []
        self._import_errors: list[str] = []
        self.elsewhere: dict[str, str] = {}

    def load(self) -> None:
        """Import every tool module and build the tools of this runtime.

        Never raises for a bad module: each failure becomes one line in ``load_errors`` (announced in
        READY) and its traceback goes to this worker's log; the other modules' tools are served.
        """
        for module in self.modules:
            try:
                import_tool_module(module)
            except BaseException as exc:  # SystemExit from a module must not end the worker silently
                if isinstance(exc, KeyboardInterrupt):
                    raise
                message = f"tool module {module!r} failed to import: {type(exc).__name__}: {_one_line(exc)}"
                logger.error("%s", message, exc_info=True)
                self._import_errors.append(message)
        self._scan()

    def announce(self, emit: Callable[[Message], None]) -> None:
        """Build the entries of the registries again (some were registered at run time) and send the new
        catalog (CATALOG_CHANGED) with ``emit``; any thread."""
        self._scan()
        emit(CatalogChanged(self._catalog(), self.load_errors, self.elsewhere))

    def _scan(self) -> None:
        """The entries of every registry, this runtime's in ``tools`` and the others' in ``elsewhere``;
        the three tables are replaced whole (a scan at run time never shows a half-built one)."""
        tools: dict[str, ToolSpec] = {}
        elsewhere: dict[str, str] = {}
        errors = list(self._import_errors)
        registry = get_registry()
        builders: list[Callable[[], ToolSpec]] = [
            functools.partial(build_tool_spec, func, metadata)
            for metadata in registry.list_all()
            if (func := registry.get_function(metadata.name)) is not None
        ]
        builders += [
            functools.partial(build_entry_spec, func, entry)
            for entry, func in get_entry_registry().list_all()
        ]
        for build in builders:
            try:
                spec = build()
            except ToolDefinitionError as exc:
                errors.append(_one_line(exc))
                logger.error("%s", exc)
                continue
            if spec.runtime == self.runtime:
                tools[spec.ref] = spec
            else:
                elsewhere[spec.ref] = spec.runtime
        self.tools, self.elsewhere, self.load_errors = tools, elsewhere, errors

    def _catalog(self) -> list[dict[str, Any]]:
        return [spec.catalog_entry() for spec in self.tools.values()]

    def ready(self) -> Ready:
        return Ready(
            worker_id=self.worker_id,
            pid=os.getpid(),
            pool=self.pool,
            protocol_version=PROTOCOL_VERSION,
            catalog=self._catalog(),
            load_errors=self.load_errors,
            elsewhere=self.elsewhere,
        )

    def prepare(
        self,
        call: Call,
        emit: Callable[[Message], None],
        request: Callable[[int, str, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
    ) -> PreparedCall:
        """Look the tool up and validate the arguments.

        Raises:
            UnknownToolError, InvalidArgumentsError: answer with ``error_frame``.
        """
        kind = call.kind
        spec = self.tools.get(call.tool if kind == "tool" else f"{kind}:{call.tool}")
        if spec is None:
            raise UnknownToolError(f"unknown {kind} {call.tool!r} on worker {self.worker_id}")
        arguments = call.arguments
        if kind == "completion":  # the handler takes what it names of value and context
            arguments = {k: v for k, v in arguments.items() if k in spec.argument_names}
        kwargs = spec.parse_arguments(arguments)
        timeout = _earliest(call.timeout, spec.metadata.timeout_seconds)
        context = ToolContext(
            call_id=call.call_id,
            tool=spec.name,
            worker_id=self.worker_id,
            runtime=self.runtime,
            deadline=None if timeout is None else time.monotonic() + timeout,
            progress_token=call.progress_token,
            meta=call.meta,
            emit=emit,
            request=None if request is None else functools.partial(request, call.call_id),
            announce=functools.partial(self.announce, emit),
        )
        if spec.context_parameter is not None:
            kwargs[spec.context_parameter] = context
        return PreparedCall(call.call_id, spec, kwargs, context, timeout)

    async def run(
        self,
        call: PreparedCall,
        run_sync: Callable[[Callable[[], Any]], Awaitable[Any]],
        threads: ThreadLoad | None = None,
    ) -> bytes:
        """Run the tool and return its RESULT frame; an exception from the tool becomes a tool error,
        but for a ``ClientRequestError`` of code -32021 (the client lacks a capability the tool needs),
        which fails the call with that protocol error. For any other kind, a ``ClientRequestError`` is an
        ERROR frame with its code, message and data (a ``tasks:get`` of an unknown task: -32602); any
        other exception is an ERROR -32603.

        ``run_sync`` runs a sync tool's function in the worker's thread pool (``loop.run_in_executor`` or
        ``trio.to_thread.run_sync``), counted by ``threads`` when given.

        Cancellation: the runtime's cancellation (a CANCEL frame or the deadline) propagates after the
        call's context is marked cancelled, so a sync tool still running in its thread can notice; that
        thread is counted as held by a cancelled call (``ThreadLoad.abandon``) until the function returns.
        """
        try:
            if call.spec.is_async:
                value = await call.invoke()
            elif threads is None:
                value = await run_sync(call.invoke)
            else:
                value = await run_sync(threads.wrap(call.call_id, call.spec.name, call.invoke))
        except ClientRequestError as exc:
            if exc.code == MISSING_REQUIRED_CLIENT_CAPABILITY:  # the request cannot be processed at all
                return self.error_frame(call.call_id, MissingCapabilityError(str(exc), exc.data))
            if call.spec.kind != "tool":  # the entry refused the request: the caller gets its error
                return encode(Error(call.call_id, exc.code, _one_line(exc), exc.data))
            return self.failure_frame(call, exc)
        except Exception as exc:
            return self.failure_frame(call, exc)
        except BaseException:
            call.context.mark_cancelled()
            if threads is not None:
                threads.abandon(call.call_id)
            raise
        return self.result_frame(call, value)

    def error_frame(self, call_id: int, error: CallError) -> bytes:
        """An ERROR frame: the call did not start (a protocol error for the client)."""
        return encode(Error(call_id, error.code, str(error), error.data))

    def result_frame(self, call: PreparedCall, value: Any) -> bytes:
        """The RESULT frame for what the function returned (a tool's ``CallToolResult``, another kind's
        result); an unrepresentable or oversized value becomes an error naming the problem (``isError``
        for a tool, ERROR -32603 for another kind)."""
        adapter = call.spec.output_adapter
        try:
            if call.spec.kind != "tool":
                result = to_kind_result(call.spec.kind, value, call.spec.listing)
            else:
                if adapter is not None:
                    try:
                        value = adapter.dump_python(
                            adapter.validate_python(value), mode="json", by_alias=True
                        )
                    except pydantic.ValidationError as exc:
                        return self._error_result(
                            call,
                            f"tool {call.spec.name!r} returned a value that does not match its output "
                            f"schema: {_one_line(exc)}",
                        )
                    except pydantic_core.PydanticSerializationError as exc:
                        raise TypeError(f"tool returned a value JSON cannot represent: {exc}") from None
                result = to_call_tool_result(value)
            frame = encode(Result(call.call_id, result))
        except (TypeError, ValueError, ProtocolError) as exc:
            return self.failure_frame(call, exc)
        if len(frame) > self.max_message_size:
            return self._error_result(
                call,
                f"{self._what(call)} returned {len(frame)} bytes, over the limit of "
                f"{self.max_message_size} bytes (max_message_size)",
            )
        return frame

    def failure_frame(self, call: PreparedCall, exc: BaseException) -> bytes:
        """The RESULT frame (``isError: true``) for a tool that raised, the ERROR frame (-32603) for another
        kind; the traceback stays in this log."""
        logger.error(
            "%s (call %d) raised %s",
            self._what(call),
            call.call_id,
            type(exc).__name__,
            exc_info=exc,
            extra={"tool": call.spec.name, "call_id": call.call_id},
        )
        return self._error_result(call, f"{self._what(call)} failed: {type(exc).__name__}: {_one_line(exc)}")

    def timeout_frame(self, call: PreparedCall) -> bytes:
        """The RESULT frame for a call that outlived its deadline (an ERROR frame, -32603, for a run of an
        MCP task, which a timeout fails)."""
        message = f"{self._what(call)} timed out after {round(call.timeout or 0, 2):g} s"
        meta = call.context.meta
        if meta is not None and meta.get(TASK_RUN_META):
            return encode(Error(call.call_id, INTERNAL_ERROR, message, None))
        return self._error_result(call, message)

    def _error_result(self, call: PreparedCall, message: str) -> bytes:
        if call.spec.kind != "tool":  # only a tool has an isError result; the others fail as protocol errors
            return encode(Error(call.call_id, INTERNAL_ERROR, message, None))
        return encode(Result(call.call_id, error_result(message)))

    @staticmethod
    def _what(call: PreparedCall) -> str:
        """``tool 'x'``, ``resource 'config://app'``, ``prompt 'greet'``, ... for messages."""
        spec = call.spec
        return f"tool {spec.name!r}" if spec.kind == "tool" else f"{spec.kind.replace('_', ' ')} {spec.key!r}"


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] if text else "(no message)"


__all__ = ["DEFAULT_TOOL_MODULES", "PreparedCall", "ToolHost"]
