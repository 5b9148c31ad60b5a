"""How large the values a workflow carries may be: bounded where they are produced, clipped where shown.

A step's input is built from earlier steps' outputs, so a workflow whose steps each double their output
grew a 32 MB step input from a 3.2 KB submission; that input then went out as one frame over
``max_message_size`` and was lost, and every view of the task carried it. So a step's resolved input and
its output are measured (as compact JSON, the form they are stored and sent in) when they are produced,
and a step whose input or output is over ``step_max_bytes`` (the ``workflow_step_max_bytes`` setting)
fails with a message naming both sizes. Views that list or describe tasks clip a value over
``PREVIEW_BYTES`` to a preview that says how large it is and which tool gives it whole.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_STEP_MAX_BYTES = 1024 * 1024
"""The largest input or output of a workflow step, in bytes of compact JSON (``workflow_step_max_bytes``)."""
PREVIEW_BYTES = 16 * 1024
"""A value larger than this (compact JSON) is clipped in ``task_status`` and ``workflow_result``."""


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def over_limit(what: str, value: Any, limit: int | None) -> str | None:
    """Why ``value`` may not be ``what`` (over ``limit`` bytes), or None when it fits or there is no limit."""
    if limit is None:
        return None
    size = json_size(value)
    if size <= limit:
        return None
    return f"{what} is {size} bytes of JSON, over the limit of {limit} bytes (workflow_step_max_bytes)"


def clipped(value: Any, whole: str) -> Any:
    """``value``, or for one over ``PREVIEW_BYTES`` a preview: ``{"truncated": true, "bytes": N,
    "preview": <its first PREVIEW_BYTES characters of JSON>, "whole": <how to get it whole>}``."""
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    if len(text) <= PREVIEW_BYTES:  # characters <= bytes: a cheap first test
        return value
    size = len(text.encode())
    if size <= PREVIEW_BYTES:
        return value
    return {"truncated": True, "bytes": size, "preview": text[:PREVIEW_BYTES], "whole": whole}
