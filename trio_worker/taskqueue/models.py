"""The shapes of the task queue's inputs: status names, id patterns, ranges and the nested objects
(retry policy, retry config, workflow step).

``tools.py`` uses these types in its signatures, so the input schemas clients see carry the same enums and
bounds; the engine validates its own arguments with ``parse`` against the same models, so a direct caller
(a test, another module) gets the same one-line errors as a client.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidRequestError

TaskStatus = Literal["queued", "running", "input_required", "completed", "failed", "cancelled"]
TASK_STATUSES: tuple[TaskStatus, ...] = (
    "queued",
    "running",
    "input_required",
    "completed",
    "failed",
    "cancelled",
)
"""``input_required``: a protocol task parked until the client answers its input requests (``tasks:update``);
not runnable and not terminal."""
TERMINAL_TASK_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

WorkflowStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
WORKFLOW_STATUSES: tuple[WorkflowStatus, ...] = ("pending", "running", "completed", "failed", "cancelled")

StepStatus = Literal["pending", "queued", "running", "completed", "failed", "cancelled"]
STEP_STATUSES: tuple[StepStatus, ...] = ("pending", "queued", "running", "completed", "failed", "cancelled")

GraphFormat = Literal["json", "dot", "mermaid"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
"""Task, workflow and executor ids: 1-128 letters, digits, ``_ . : -``, starting with a letter or digit.
No ``/``: the task of a workflow step is ``<workflow_id>/<step_id>``, which can never collide."""
TASK_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,255}$"
"""Any task id, including ``<workflow_id>/<step_id>`` of a workflow step's task."""
STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""Step ids: 1-64 letters, digits, ``_ -``; no dots, so ``${steps.<id>.output...}`` is unambiguous."""

MAX_RETRIES = 100
MAX_BACKOFF_FACTOR = 3600.0
MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_PRIORITY = 1e9
MAX_TAGS = 64
MAX_STEPS = 1000
MAX_REASON = 1000
TASK_LIST_MAX = 1000
WORKFLOW_LIST_MAX = 1000

Id = Annotated[str, Field(pattern=ID_PATTERN, description="1-128 letters, digits, '_', '.', ':' or '-'")]
TaskRef = Annotated[
    str, Field(pattern=TASK_REF_PATTERN, description="A task id (a step's task: <workflow_id>/<step_id>)")
]
Priority = Annotated[
    float,
    Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY, allow_inf_nan=False, description="Higher runs first"),
]
Tag = Annotated[str, Field(min_length=1, max_length=128)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
Timeout = Annotated[
    float,
    Field(gt=0, le=MAX_TIMEOUT, description="Seconds one attempt may run; default: the tool's own deadline"),
]
JsonObject = dict[str, Any]


class RetryPolicy(BaseModel):
    """How often a failed attempt is tried again, and how long to wait in between.

    The delay before retry *n* (1, 2, ...) is ``backoff_factor * 2**(n-1)`` seconds, capped at one hour,
    of which a random half is jitter (the wait is uniform between half and all of it).
    """

    model_config = ConfigDict(extra="forbid")

    max_retries: Annotated[
        int, Field(ge=0, le=MAX_RETRIES, description="Retries after the first attempt (0: none)")
    ] = 3
    backoff_factor: Annotated[
        float,
        Field(ge=0, le=MAX_BACKOFF_FACTOR, allow_inf_nan=False, description="Seconds before the first retry"),
    ] = 1.0


class RetryConfig(BaseModel):
    """Overrides for the new task ``task_retry`` creates; anything left out is copied from the original."""

    model_config = ConfigDict(extra="forbid")

    max_retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] | None = None
    backoff_factor: Annotated[float, Field(ge=0, le=MAX_BACKOFF_FACTOR, allow_inf_nan=False)] | None = None
    priority: Priority | None = None
    timeout: Timeout | None = None
    delay: Annotated[
        float, Field(ge=0, le=MAX_TIMEOUT, allow_inf_nan=False, description="Seconds before it may start")
    ] = 0.0


class WorkflowStep(BaseModel):
    """One step of a workflow: a tool call that runs once the steps it depends on have completed."""

    model_config = ConfigDict(extra="forbid")

    step_id: Annotated[str, Field(pattern=STEP_ID_PATTERN, description="Unique within the workflow")]
    action: Annotated[str, Field(min_length=1, max_length=128, description="The tool to call")]
    inputs: Annotated[
        JsonObject,
        Field(
            description="The tool's arguments; strings may refer to earlier outputs: ${steps.<id>.output.<path>}"
        ),
    ] = Field(default_factory=dict)
    depends_on: Annotated[list[str], Field(max_length=MAX_STEPS)] = Field(default_factory=list)
    timeout: Timeout | None = None
    retry_policy: RetryPolicy | None = None


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], value: Any, field: str) -> M:
    """``value`` (a dict or already a ``model``) validated as ``model``.

    Raises:
        InvalidRequestError: one line naming ``field`` and the first problems, e.g.
            ``retry_policy.max_retries: Input should be less than or equal to 100``.
    """
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise InvalidRequestError(describe(exc, field)) from None


def describe(exc: pydantic.ValidationError, field: str) -> str:
    """A pydantic error as one line, each problem prefixed by its dotted location under ``field``."""
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        location = ".".join([field, *(str(part) for part in error["loc"])])
        if error["type"] == "extra_forbidden":
            parts.append(f"{location}: unknown field")
        elif error["type"] == "missing":
            parts.append(f"{location}: required")
        else:
            parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def check_id(value: Any, field: str, pattern: str = ID_PATTERN) -> str:
    """``value`` if it is an id of the given pattern.

    Raises:
        InvalidRequestError: naming ``field``.
    """
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        raise InvalidRequestError(
            f"{field}: {value!r} is not a valid id (1-128 letters, digits, '_', '.', ':' or '-')"
        )
    return value


def check_range(value: Any, field: str, low: float, high: float, *, integer: bool = False) -> None:
    """Refuse a number outside ``low..high`` (or not a number, or not an integer when one is required).

    Raises:
        InvalidRequestError: ``limit: must be an integer from 1 to 1000, got 0``.
    """
    kind = "an integer" if integer else "a number"
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (not integer or isinstance(value, int))
        and math.isfinite(value)
        and low <= value <= high
    )
    if not ok:
        raise InvalidRequestError(f"{field}: must be {kind} from {low:g} to {high:g}, got {value!r}")


def check_statuses(value: Any, field: str, allowed: tuple[str, ...]) -> list[str] | None:
    """A status filter (one status, a list of them, or ``None``) as a list, or ``None`` for no filter.

    Raises:
        InvalidRequestError: an unknown status, naming the allowed ones.
    """
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)):
        raise InvalidRequestError(f"{field}: must be a status or a list of statuses")
    for item in values:
        if item not in allowed:
            raise InvalidRequestError(f"{field}: unknown status {item!r}; allowed: {', '.join(allowed)}")
    return list(values) or None


def check_tool_name(value: Any, field: str = "task_type") -> str:
    """A tool name (1-128 characters).

    Raises:
        InvalidRequestError: naming ``field``.
    """
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise InvalidRequestError(f"{field}: must be a tool name of 1 to 128 characters")
    return value


def check_strings(value: Any, field: str = "tags", max_items: int = MAX_TAGS) -> list[str]:
    """A list of 1-128 character strings (tags, capabilities, ids) without repeats; ``None`` is empty.

    Raises:
        InvalidRequestError: naming ``field``.
    """
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > max_items:
        raise InvalidRequestError(f"{field}: must be a list of at most {max_items} strings")
    for item in value:
        if not isinstance(item, str) or not 1 <= len(item) <= 128:
            raise InvalidRequestError(f"{field}: {item!r} is not a string of 1 to 128 characters")
    return list(dict.fromkeys(value))


def check_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object (a copy); ``None`` is empty.

    Raises:
        InvalidRequestError: naming ``field``.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{field}: must be an object")
    return dict(value)


def check_reason(value: Any, field: str = "reason") -> str | None:
    """A free-text reason of at most ``MAX_REASON`` characters; empty means none.

    Raises:
        InvalidRequestError: naming ``field``.
    """
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise InvalidRequestError(f"{field}: must be a string of at most {MAX_REASON} characters")
    return value or None
