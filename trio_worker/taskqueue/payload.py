"""Checking a task's payload against its tool's input schema when it is submitted.

A bad payload is refused at submit time with one line naming the field, instead of failing later in a
worker. JSON Schema validation is strict about types (``"2"`` is not an integer here, though the worker's
pydantic validation would coerce it): what is refused here is refused for every client alike.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from .errors import InvalidRequestError
from .workflows import contains_reference

MAX_PROBLEMS = 5
_STRUCTURAL = frozenset({"required", "additionalProperties", "unevaluatedProperties", "dependentRequired"})


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def check_arguments(
    schema: dict[str, Any] | None, arguments: Any, field: str, *, references_allowed: bool = False
) -> None:
    """Refuse ``arguments`` that ``schema`` (a tool's ``inputSchema``) does not accept.

    With ``references_allowed`` (workflow inputs, checked before earlier steps ran), a value that is a
    ``${steps...}`` reference is not judged: its type is only known when the step starts, and it is
    checked again then.

    Raises:
        InvalidRequestError: ``payload.count: 'x' is not of type 'integer'; payload.text: required``.
    """
    if not isinstance(arguments, dict):
        raise InvalidRequestError(f"{field}: must be an object of the tool's arguments")
    if not schema:
        return
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except (TypeError, ValueError, jsonschema.SchemaError) as exc:
        raise InvalidRequestError(f"{field}: the tool's input schema cannot be used: {exc}") from None
    problems: list[tuple[str, str]] = []
    for error in validator.iter_errors(arguments):
        if references_allowed and error.validator not in _STRUCTURAL and contains_reference(error.instance):
            continue
        problems.extend(_describe(error, field))
    if problems:
        problems = sorted(set(problems))[:MAX_PROBLEMS]
        raise InvalidRequestError("; ".join(f"{path}: {message}" for path, message in problems))


def _describe(error: ValidationError, field: str) -> list[tuple[str, str]]:
    path = field + "".join(f".{part}" for part in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        wanted = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [name for name in wanted if name not in error.instance]
        return [(f"{path}.{name}", "required") for name in missing] or [(path, error.message)]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = set(schema.get("properties") or {})
        extra = [name for name in error.instance if name not in known]
        return [(f"{path}.{name}", "unknown field") for name in extra] or [(path, error.message)]
    return [(path, error.message)]
