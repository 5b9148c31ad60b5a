"""Tool metadata: what a tool is, where it runs and how it may be called.

``ToolMetadata`` carries the original design's eleven attributes (name, runtime, requires_p2p, category,
priority, timeout_seconds, retry_policy, memory_intensive, cpu_intensive, io_intensive, mcp_schema,
mcp_description) plus what a production server needs: a title, the MCP tool annotations (read-only,
idempotent, destructive, open-world), a per-tool ``max_concurrency`` and whether a call may run as an MCP
task (``task_support``, ``task_after_input``).

``@tool_metadata(...)`` attaches a ``ToolMetadata`` to a function and registers it in the process-wide
``ToolMetadataRegistry`` (``get_registry()``). Every worker process imports the configured tool modules and
turns each registered function of its own runtime into an MCP tool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar, overload

from .errors import ToolDefinitionError

Runtime = Literal["asyncio", "trio"]
RuntimeChoice = Literal["asyncio", "trio", "auto"]
RetryPolicy = Literal["none", "exponential", "linear"]
TaskSupport = Literal["forbidden", "optional", "required"]

RUNTIMES: tuple[Runtime, ...] = ("asyncio", "trio")
RUNTIME_CHOICES: tuple[RuntimeChoice, ...] = ("asyncio", "trio", "auto")
RETRY_POLICIES: tuple[RetryPolicy, ...] = ("none", "exponential", "linear")
TASK_SUPPORT: tuple[TaskSupport, ...] = ("forbidden", "optional", "required")

METADATA_ATTRIBUTE = "__tool_metadata__"
"""Name of the attribute ``@tool_metadata`` sets on the decorated function."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ToolMetadata:
    """Everything the server knows about one tool besides its code.

    Raises ``ToolDefinitionError`` at construction when a value is out of range, naming the field.

    Attributes:
        name: The MCP tool name (letters, digits, ``_``, ``-``, ``.``; 1-128 characters).
        runtime: ``"asyncio"``, ``"trio"`` or ``"auto"`` (decided by ``detect_runtime``).
        requires_p2p: The tool needs the P2P layer (the task queue and workflow engine), which runs on Trio:
            ``"auto"`` resolves to Trio and ``runtime="asyncio"`` is refused as a contradiction.
        category: Free-form grouping used by ``ToolMetadataRegistry.get_by_category``.
        priority: 0 (lowest) to 10 (highest); default 5.
        timeout_seconds: Deadline of one call in seconds, a bound tighter than the server's
            ``request_timeout``; ``None`` (the default) for the server's ``request_timeout`` alone.
        retry_policy: ``"none"``, ``"exponential"`` or ``"linear"``; recorded for the task queue (a call
            whose worker died is retried by the router only by the ``read_only``/``idempotent`` rule).
        memory_intensive, cpu_intensive, io_intensive: Scheduling hints.
        mcp_schema: An explicit JSON input schema shown to clients instead of the generated one; arguments are
            still validated against the type hints, so keep the two in agreement.
        mcp_description: The tool description; by default the function's docstring.
        title: A human-readable title shown by clients.
        read_only, idempotent, destructive, open_world: MCP tool annotations; ``None`` leaves a hint unsaid.
            A read-only or idempotent tool's call is sent once more if its worker dies during the call.
        max_concurrency: At most this many calls of the tool run at once, over all workers (``None``: no
            limit); the router queues or refuses the others ("server busy").
        task_support: Whether a call may run as an MCP task (the ``io.modelcontextprotocol/tasks``
            extension, on the durable task queue): ``"forbidden"`` (the default: always a plain call),
            ``"optional"`` (a task for a client that declared the extension, a plain call for the others)
            or ``"required"`` (always a task; a client without the extension gets -32021).
        task_after_input: With ``task_support``: the call first runs as a plain call, asking the client
            what it needs (input-required rounds), and becomes a task where the function awaits
            ``ctx.run_as_task()``; the task runs the function again from the start, with the answers.
        scopes: OAuth scopes a caller's token must hold to see the tool in ``tools/list`` and call it
            (when the server runs with ``auth``); empty: any authenticated caller.
    """

    name: str
    runtime: RuntimeChoice = "auto"
    requires_p2p: bool = False
    category: str = "general"
    priority: int = 5
    timeout_seconds: float | None = None
    retry_policy: RetryPolicy = "none"
    memory_intensive: bool = False
    cpu_intensive: bool = False
    io_intensive: bool = False
    mcp_schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    mcp_description: str | None = None
    title: str | None = None
    read_only: bool | None = None
    idempotent: bool | None = None
    destructive: bool | None = None
    open_world: bool | None = None
    max_concurrency: int | None = None
    task_support: TaskSupport = "forbidden"
    task_after_input: bool = False
    scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.scopes, list):  # as it comes back from msgpack or JSON
            object.__setattr__(self, "scopes", tuple(self.scopes))
        if not isinstance(self.scopes, tuple) or not all(
            isinstance(scope, str) and scope and " " not in scope and '"' not in scope
            for scope in self.scopes
        ):
            raise ToolDefinitionError(
                f"tool {getattr(self, 'name', '?')!r}: scopes={self.scopes!r} must be a list of scope "
                "names (no spaces or quotes)"
            )
        if (
            not isinstance(self.name, str)
            or not 1 <= len(self.name) <= 128
            or not all(c.isalnum() or c in "_-." for c in self.name)
        ):
            raise ToolDefinitionError(
                f"tool name {self.name!r} is invalid: use 1-128 letters, digits, '_', '-' or '.'"
            )
        if self.runtime not in RUNTIME_CHOICES:
            raise ToolDefinitionError(
                f"tool {self.name!r}: runtime={self.runtime!r} is invalid; allowed: asyncio, trio, auto"
            )
        if (
            isinstance(self.priority, bool)
            or not isinstance(self.priority, int)
            or not 0 <= self.priority <= 10
        ):
            raise ToolDefinitionError(
                f"tool {self.name!r}: priority={self.priority!r} must be an integer 0..10"
            )
        if self.timeout_seconds is not None and (
            isinstance(self.timeout_seconds, bool)
            or not isinstance(self.timeout_seconds, (int, float))
            or not self.timeout_seconds > 0
        ):
            raise ToolDefinitionError(
                f"tool {self.name!r}: timeout_seconds={self.timeout_seconds!r} must be a positive number or None"
            )
        if self.retry_policy not in RETRY_POLICIES:
            raise ToolDefinitionError(
                f"tool {self.name!r}: retry_policy={self.retry_policy!r} is invalid; "
                "allowed: none, exponential, linear"
            )
        if self.requires_p2p and self.runtime == "asyncio":
            raise ToolDefinitionError(
                f"tool {self.name!r}: requires_p2p=True needs the Trio runtime (the task queue runs on Trio); "
                "use runtime='trio' or 'auto'"
            )
        if self.max_concurrency is not None and (
            isinstance(self.max_concurrency, bool)
            or not isinstance(self.max_concurrency, int)
            or self.max_concurrency < 1
        ):
            raise ToolDefinitionError(
                f"tool {self.name!r}: max_concurrency={self.max_concurrency!r} must be a positive integer or None"
            )
        if self.task_support not in TASK_SUPPORT:
            raise ToolDefinitionError(
                f"tool {self.name!r}: task_support={self.task_support!r} is invalid; "
                "allowed: forbidden, optional, required"
            )
        if self.task_after_input and self.task_support == "forbidden":
            raise ToolDefinitionError(
                f"tool {self.name!r}: task_after_input=True needs task_support='optional' or 'required'"
            )
        if self.mcp_schema is not None and (
            not isinstance(self.mcp_schema, dict) or self.mcp_schema.get("type") != "object"
        ):
            raise ToolDefinitionError(
                f"tool {self.name!r}: mcp_schema must be a JSON schema of type 'object'"
            )

    def annotations(self) -> dict[str, Any]:
        """The MCP ``ToolAnnotations`` object for this tool, with only the hints that were stated."""
        hints: dict[str, Any] = {}
        if self.title is not None:
            hints["title"] = self.title
        for attribute, key in (
            ("read_only", "readOnlyHint"),
            ("idempotent", "idempotentHint"),
            ("destructive", "destructiveHint"),
            ("open_world", "openWorldHint"),
        ):
            value = getattr(self, attribute)
            if value is not None:
                hints[key] = value
        return hints

    @property
    def retry_safe(self) -> bool:
        """Whether a call could safely be sent again after its worker died: read-only or idempotent tools."""
        return bool(self.read_only or self.idempotent)

    def to_dict(self) -> dict[str, Any]:
        """The metadata as plain data (msgpack- and JSON-safe)."""
        data = asdict(self)
        data["scopes"] = list(self.scopes)
        return data


class ToolMetadataRegistry:
    """A thread-safe registry of tool metadata and the functions behind it.

    Tool names are unique: registering a second, different function under a name that is taken raises
    ``ToolDefinitionError`` naming both functions. Registering the same function again replaces its entry
    (a module reloaded in place).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._metadata: dict[str, ToolMetadata] = {}
        self._functions: dict[str, Callable[..., Any]] = {}

    def register(self, metadata: ToolMetadata, func: Callable[..., Any] | None = None) -> None:
        """Add ``metadata`` (and the function it describes, if given) to the registry."""
        with self._lock:
            existing = self._functions.get(metadata.name)
            if (
                existing is not None
                and func is not None
                and _qualified_name(existing) != _qualified_name(func)
            ):
                raise ToolDefinitionError(
                    f"tool name {metadata.name!r} is defined twice: by {_qualified_name(existing)} "
                    f"and by {_qualified_name(func)}"
                )
            self._metadata[metadata.name] = metadata
            if func is not None:
                self._functions[metadata.name] = func

    def unregister(self, name: str) -> None:
        """Remove a tool; a no-op when it is not registered."""
        with self._lock:
            self._metadata.pop(name, None)
            self._functions.pop(name, None)

    def get(self, name: str) -> ToolMetadata | None:
        """The metadata registered under ``name``, or ``None``."""
        with self._lock:
            return self._metadata.get(name)

    def get_function(self, name: str) -> Callable[..., Any] | None:
        """The function registered under ``name``, or ``None``."""
        with self._lock:
            return self._functions.get(name)

    def list_all(self) -> list[ToolMetadata]:
        """Every registered tool's metadata, sorted by name."""
        with self._lock:
            return [self._metadata[name] for name in sorted(self._metadata)]

    def get_by_runtime(self, runtime: str) -> list[ToolMetadata]:
        """Tools whose metadata names ``runtime`` explicitly (``"auto"`` tools are not resolved here)."""
        return [m for m in self.list_all() if m.runtime == runtime]

    def get_by_category(self, category: str) -> list[ToolMetadata]:
        """Tools of one category, sorted by name."""
        return [m for m in self.list_all() if m.category == category]

    def clear(self) -> None:
        """Forget every tool (used by tests)."""
        with self._lock:
            self._metadata.clear()
            self._functions.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._metadata)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._metadata


_registry = ToolMetadataRegistry()


def get_registry() -> ToolMetadataRegistry:
    """The process-wide registry that ``@tool_metadata`` writes to."""
    return _registry


@overload
def tool_metadata(func: F, /) -> F: ...
@overload
def tool_metadata(
    func: None = None,
    /,
    *,
    name: str | None = None,
    runtime: RuntimeChoice = "auto",
    registry: ToolMetadataRegistry | None = None,
    **fields: Any,
) -> Callable[[F], F]: ...
def tool_metadata(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    runtime: RuntimeChoice = "auto",
    registry: ToolMetadataRegistry | None = None,
    **fields: Any,
) -> F | Callable[[F], F]:
    """Declare a function an MCP tool, usable bare (``@tool_metadata``) or with arguments.

    The keyword arguments are ``ToolMetadata`` fields; ``name`` defaults to the function's name. The
    function is returned unchanged apart from a ``__tool_metadata__`` attribute, so it stays callable
    directly (in tests, for example).

    Raises:
        ToolDefinitionError: a field is invalid or unknown, or the name is taken by another function.
    """

    def decorate(target: F) -> F:
        if not callable(target):
            raise ToolDefinitionError(f"@tool_metadata must decorate a function, not {target!r}")
        unknown = set(fields) - set(ToolMetadata.__dataclass_fields__)
        if unknown:
            raise ToolDefinitionError(
                f"@tool_metadata on {_qualified_name(target)}: unknown field(s) {', '.join(sorted(unknown))}"
            )
        metadata = ToolMetadata(name=target.__name__ if name is None else name, runtime=runtime, **fields)
        setattr(target, METADATA_ATTRIBUTE, metadata)
        (registry if registry is not None else _registry).register(metadata, target)
        return target

    if func is not None:
        return decorate(func)
    return decorate


def _qualified_name(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
