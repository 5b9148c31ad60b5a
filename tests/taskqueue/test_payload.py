"""Payload checks against input schemas (``payload.py``): every field named, references allowed in
workflow inputs."""

from __future__ import annotations

import pytest

from trio_worker.taskqueue.errors import InvalidRequestError
from trio_worker.taskqueue.payload import check_arguments

SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "box": {"$ref": "#/$defs/Box"}},
    "required": ["n"],
    "additionalProperties": False,
    "$defs": {"Box": {"type": "object", "properties": {"w": {"type": "number", "exclusiveMinimum": 0}}}},
}


def test_payload_errors_name_every_field() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_arguments(SCHEMA, {"n": "2", "box": {"w": -1}, "x": 1}, "payload")
    assert str(refused.value) == (
        "payload.box.w: -1 is less than or equal to the minimum of 0; "
        "payload.n: '2' is not of type 'integer'; payload.x: unknown field"
    )
    with pytest.raises(InvalidRequestError, match=r"^payload: must be an object"):
        check_arguments(SCHEMA, [1], "payload")


def test_workflow_inputs_may_hold_references_but_not_miss_required_fields() -> None:
    check_arguments(SCHEMA, {"n": "${steps.a.output.n}"}, "inputs", references_allowed=True)
    with pytest.raises(InvalidRequestError, match=r"^inputs\.n: required$"):
        check_arguments(SCHEMA, {"box": "${steps.a.output}"}, "inputs", references_allowed=True)
