"""Resources, resource templates, prompts and completion handlers: the other kinds of catalog entry.

A server offers five kinds of thing, and mcp-supervisor serves them all the same way: a function in a tool
module, run in a worker of its runtime, announced in READY, routed by the router's one catalog and called
with one CALL frame that names its kind. ``@tool_metadata`` declares tools (``shared.metadata``); this
module declares the rest, with decorators of the same shape:

- ``@resource_metadata(uri="config://app", mime_type="application/json")``: a resource read by calling the
  function without arguments;
- ``@resource_metadata(uri_template="users://{id}")``: a resource template, read through the function
  with the template's variables as keyword arguments;
- ``@prompt_metadata(...)``: a prompt; its parameters are the prompt's arguments;
- ``@completion_metadata(prompt="greet", argument="name")`` or
  ``@completion_metadata(resource_template="users://{id}", argument="id")``: the completion of one
  prompt argument or template variable; the function takes ``value`` (what the user typed) and, if it
  wants them, ``context`` (the other arguments already chosen).

Each entry carries a ``ToolMetadata`` (``EntryMetadata.run``) named ``<kind>.<function name>`` that says
how its calls run: runtime (``"auto"`` is decided by ``detect_runtime`` as for tools), ``timeout_seconds``,
``max_concurrency``, and the retry rule. Every kind but a tool is read-only unless it says otherwise
(``read_only=False``), so a call whose worker dies is sent once more. A parameter annotated ``ToolContext``
gets the same context a tool gets (progress, log, sample, elicit, call_tool, resource_updated).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .errors import ToolDefinitionError
from .metadata import RuntimeChoice, ToolMetadata

Kind = Literal["tool", "resource", "resource_template", "prompt", "completion", "tasks"]
KINDS: tuple[Kind, ...] = ("tool", "resource", "resource_template", "prompt", "completion", "tasks")
"""``"tasks"`` is internal: the four ``tasks:*`` entries of the task-queue worker (``tasks:create``,
``tasks:get``, ``tasks:update``, ``tasks:cancel``), which the front calls for the MCP tasks extension and
never lists. They are declared with ``internal_entry``."""
ENTRY_ATTRIBUTE = "__entry_metadata__"
"""Name of the attribute the decorators of this module set on the decorated function (a list: one function
may serve several entries)."""

F = TypeVar("F", bound=Callable[..., Any])


def entry_ref(kind: str, key: str) -> str:
    """The one string the router and the workers know an entry by: a tool's name, else ``kind:key``.

    A tool name cannot hold ``:``, so no other kind's reference can be taken for a tool's, and a tool
    call pays nothing for the other kinds."""
    return key if kind == "tool" else f"{kind}:{key}"


def completion_key(ref_kind: Literal["prompt", "resource_template"], ref: str, argument: str) -> str:
    """The key of the completion handler of ``argument`` of the prompt or template ``ref``."""
    return f"{ref_kind} {ref} {argument}"


@dataclass(frozen=True, slots=True)
class EntryMetadata:
    """One resource, resource template, prompt or completion handler.

    Attributes:
        kind: ``"resource"``, ``"resource_template"``, ``"prompt"`` or ``"completion"``.
        key: What the entry is found by: the URI, the URI template, the prompt name, or
            ``completion_key(...)``.
        run: How its calls run (runtime, timeout, concurrency, retry); its ``name`` is
            ``<kind>.<function name>``.
        name: The name shown to clients (resources and templates: the function's name by default; prompts:
            the prompt name).
        title, description: Shown to clients; the description defaults to the function's docstring.
        mime_type: Resources and templates: the contents' MIME type (by default ``text/plain`` for text
            and ``application/octet-stream`` for bytes).
        size: Resources: the size in bytes, if known.
        annotations: Resources and templates: MCP ``Annotations`` (``audience``, ``priority``, ...).
    """

    kind: Kind
    key: str
    run: ToolMetadata
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None
    annotations: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def ref(self) -> str:
        return entry_ref(self.kind, self.key)


class EntryRegistry:
    """The declared entries of a process (not tools: ``ToolMetadataRegistry`` holds those); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[EntryMetadata, Callable[..., Any]]] = {}

    def register(self, metadata: EntryMetadata, func: Callable[..., Any]) -> None:
        """Register ``func`` as ``metadata``'s function.

        Raises:
            ToolDefinitionError: another function already serves the same kind and key.
        """
        with self._lock:
            known = self._entries.get(metadata.ref)
            if known is not None and known[1] is not func:
                raise ToolDefinitionError(
                    f"{metadata.kind} {metadata.key!r} is declared twice ({_qualified_name(known[1])} and "
                    f"{_qualified_name(func)})"
                )
            self._entries[metadata.ref] = (metadata, func)

    def unregister(self, ref: str) -> None:
        """Forget the entry of reference ``ref`` (``EntryMetadata.ref``); a no-op for an unknown one."""
        with self._lock:
            self._entries.pop(ref, None)

    def list_all(self) -> list[tuple[EntryMetadata, Callable[..., Any]]]:
        """Every entry with its function, sorted by reference."""
        with self._lock:
            return [self._entries[ref] for ref in sorted(self._entries)]

    def clear(self) -> None:
        """Forget every entry (used by tests)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_registry = EntryRegistry()


def get_entry_registry() -> EntryRegistry:
    """The process-wide registry the decorators of this module write to."""
    return _registry


def resource_metadata(
    *,
    uri: str | None = None,
    uri_template: str | None = None,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    mime_type: str | None = None,
    size: int | None = None,
    annotations: dict[str, Any] | None = None,
    runtime: RuntimeChoice = "auto",
    registry: EntryRegistry | None = None,
    **fields: Any,
) -> Callable[[F], F]:
    """Declare a function a resource (``uri``) or a resource template (``uri_template``).

    The function returns the contents: ``str`` (text), ``bytes`` (a blob, sent base64-encoded), anything
    else JSON can carry (sent as JSON text), or MCP resource contents. A template's function takes the
    template's variables as keyword arguments (validated and coerced by their type hints). ``fields`` are
    ``ToolMetadata`` fields (``timeout_seconds``, ``max_concurrency``, ``read_only``, ...).

    Raises:
        ToolDefinitionError: neither or both of ``uri`` and ``uri_template``, an invalid field, or the
            URI already declared.
    """
    if (uri is None) == (uri_template is None):
        raise ToolDefinitionError("@resource_metadata needs exactly one of uri= and uri_template=")
    kind: Kind = "resource" if uri is not None else "resource_template"
    key = uri if uri is not None else uri_template
    assert key is not None
    if not key:
        raise ToolDefinitionError(f"@resource_metadata: the {kind} URI must not be empty")
    return _decorator(
        kind,
        key,
        name,
        dict(title=title, description=description, mime_type=mime_type, size=size, annotations=annotations),
        runtime,
        registry,
        fields,
    )


def prompt_metadata(
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    runtime: RuntimeChoice = "auto",
    registry: EntryRegistry | None = None,
    **fields: Any,
) -> Callable[[F], F]:
    """Declare a function a prompt named ``name`` (by default the function's name).

    The function's parameters are the prompt's arguments (required when they have no default). It returns
    the messages: a string (one user message), an MCP content block (one user message), a message
    (``{"role": ..., "content": ...}`` or an MCP ``PromptMessage``), or a list of those.

    Raises:
        ToolDefinitionError: an invalid field, or the prompt already declared.
    """
    return _decorator(
        "prompt", name, name, dict(title=title, description=description), runtime, registry, fields
    )


def completion_metadata(
    *,
    argument: str,
    prompt: str | None = None,
    resource_template: str | None = None,
    runtime: RuntimeChoice = "auto",
    registry: EntryRegistry | None = None,
    **fields: Any,
) -> Callable[[F], F]:
    """Declare a function the completion handler of ``argument`` of a prompt or a resource template.

    The function takes ``value`` (the text typed so far) and optionally ``context`` (a dict of the other
    arguments already chosen) and returns the suggestions: a list of strings (the first 100 are sent,
    with ``total`` and ``hasMore``), or a dict or MCP ``Completion`` with ``values``, ``total``,
    ``hasMore``.

    Raises:
        ToolDefinitionError: neither or both of ``prompt`` and ``resource_template``, or an invalid field.
    """
    if (prompt is None) == (resource_template is None):
        raise ToolDefinitionError("@completion_metadata needs exactly one of prompt= and resource_template=")
    if prompt is not None:
        key = completion_key("prompt", prompt, argument)
    else:
        assert resource_template is not None
        key = completion_key("resource_template", resource_template, argument)
    return _decorator("completion", key, None, {}, runtime, registry, fields)


def _decorator(
    kind: Kind,
    key: str | None,
    name: str | None,
    shown: dict[str, Any],
    runtime: RuntimeChoice,
    registry: EntryRegistry | None,
    fields: dict[str, Any],
) -> Callable[[F], F]:
    unknown = set(fields) - (set(ToolMetadata.__dataclass_fields__) - {"name", "runtime"})
    if unknown:
        raise ToolDefinitionError(f"@{kind} metadata: unknown field(s) {', '.join(sorted(unknown))}")
    fields = {"read_only": True, **fields}

    def decorate(target: F) -> F:
        if not callable(target):
            raise ToolDefinitionError(f"@{kind}_metadata must decorate a function, not {target!r}")
        function_name = getattr(target, "__name__", "") or "entry"
        safe_name = "".join(c if c.isalnum() or c in "_-." else "_" for c in function_name)  # a lambda
        run = ToolMetadata(name=f"{kind}.{safe_name}"[:128], runtime=runtime, **fields)
        metadata = EntryMetadata(
            kind=kind,
            key=key if key is not None else function_name,
            run=run,
            name=name or function_name,
            **shown,
        )
        entries = getattr(target, ENTRY_ATTRIBUTE, None)
        if entries is None:
            entries = []
            setattr(target, ENTRY_ATTRIBUTE, entries)
        entries.append(metadata)
        (registry if registry is not None else _registry).register(metadata, target)
        return target

    return decorate


def internal_entry(
    kind: Kind, key: str, func: Callable[..., Any], run: ToolMetadata, registry: EntryRegistry | None = None
) -> EntryMetadata:
    """Register ``func`` as the internal, never listed entry ``kind:key`` (the ``tasks`` kind), running
    as ``run`` says; returns its metadata.

    Raises:
        ToolDefinitionError: another function already serves it.
    """
    metadata = EntryMetadata(kind=kind, key=key, run=run, name=key)
    (registry if registry is not None else _registry).register(metadata, func)
    return metadata


def _qualified_name(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
