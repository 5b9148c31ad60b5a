"""Turning a resource, template, prompt or completion function into the spec a worker runs.

The spec is a ``ToolSpec`` like a tool's (arguments model, context parameter, runtime), with the entry's
kind, key and what a listing shows: one call path in the worker for every kind.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from .detection import detect_runtime
from .kinds import EntryMetadata
from .schema import ToolSpec, build_tool_spec


def build_entry_spec(func: Callable[..., Any], entry: EntryMetadata) -> ToolSpec:
    """The ``ToolSpec`` of an entry declared with ``@resource_metadata``, ``@prompt_metadata`` or
    ``@completion_metadata``.

    Raises:
        ToolDefinitionError: the function cannot be described (see ``build_tool_spec``).
    """
    spec = build_tool_spec(func, entry.run)
    # not cached: two functions of one name in two modules share ``run.name`` but not their runtime
    runtime = detect_runtime(entry.run.name, func, entry.run, use_cache=False)
    description = entry.description or inspect.getdoc(func) or ""
    listing = _listing(entry, spec, description)
    return dataclasses.replace(
        spec,
        kind=entry.kind,
        key=entry.key,
        listing=listing,
        description=description,
        output_adapter=None,
        runtime=runtime,
    )


def _listing(entry: EntryMetadata, spec: ToolSpec, description: str) -> dict[str, Any]:
    shown: dict[str, Any]
    if entry.kind == "resource":
        shown = {"uri": entry.key, "name": entry.name}
    elif entry.kind == "resource_template":
        shown = {"uriTemplate": entry.key, "name": entry.name}
    elif entry.kind == "prompt":
        shown = {"name": entry.key, "arguments": _prompt_arguments(spec)}
    else:
        return {}
    for key, value in (
        ("title", entry.title),
        ("description", description or None),
        ("mimeType", entry.mime_type),
        ("size", entry.size),
        ("annotations", entry.annotations),
    ):
        if value is not None:
            shown[key] = value
    return shown


def _prompt_arguments(spec: ToolSpec) -> list[dict[str, Any]]:
    """The MCP ``PromptArgument`` list of a prompt: its parameters, described by their ``Field``."""
    arguments = []
    for name, field in spec.arguments_model.model_fields.items():
        argument: dict[str, Any] = {"name": name, "required": field.is_required()}
        if field.description:
            argument["description"] = field.description
        arguments.append(argument)
    return arguments


__all__ = ["build_entry_spec"]
