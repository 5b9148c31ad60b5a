"""Unit tests of supervisor/input_required.py: a function's requests answered from the retry's answers."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_types import ClientCapabilities

from shared.context import INPUT_KEY_META
from shared.errors import (
    INPUT_PENDING,
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    ClientRequestError,
    WorkerLostError,
)
from supervisor.input_required import InputFlow, InputRound, take_input_key

pytestmark = pytest.mark.anyio

VERSION = "2026-07-28"
KEYS = ("k" * 32,)
PARAMS: dict[str, Any] = {"name": "greet", "arguments": {}}
NAME_FORM = {"type": "object", "properties": {"name": {"type": "string"}}}


def _elicit(key: str, message: str = "Name?") -> dict[str, Any]:
    return {"mode": "form", "message": message, "requestedSchema": NAME_FORM, "_meta": {INPUT_KEY_META: key}}


def _everything(capabilities: ClientCapabilities) -> bool:
    return True


async def _run_round(flow: InputFlow, params: dict[str, Any], *requests: dict[str, Any]) -> Any:
    """One run of a function making ``requests``: the answers it got, or the input_required result."""
    round_ = flow.open("tools/call", params, _everything, VERSION)
    got: list[dict[str, Any]] = []

    async def call() -> dict[str, Any]:
        for request in requests:
            got.append(await round_.on_request("elicitation/create", dict(request)))
        return {"content": [], "isError": False}

    try:
        result = await flow.run(round_, "tools/call", params, call)
    except ClientRequestError as exc:  # the function let InputRequired out: the run ended
        assert exc.code == INPUT_PENDING
        result = flow.result(round_, "tools/call", params)
    return got if result.get("resultType") != "input_required" else result


async def test_two_rounds_replay_the_first_answer_and_ask_the_second() -> None:
    flow = InputFlow(KEYS)
    first = await _run_round(flow, PARAMS, _elicit("a"), _elicit("b", "Color?"))
    assert list(first["inputRequests"]) == ["a"]
    assert first["inputRequests"]["a"]["params"] == {
        "mode": "form", "message": "Name?", "requestedSchema": NAME_FORM
    }  # fmt: skip
    alice = {"action": "accept", "content": {"name": "Alice"}}
    retry = {**PARAMS, "inputResponses": {"a": alice}, "requestState": first["requestState"]}
    second = await _run_round(flow, retry, _elicit("a"), _elicit("b", "Color?"))
    assert list(second["inputRequests"]) == ["b"]
    blue = {"action": "accept", "content": {"name": "blue"}}
    last = {**PARAMS, "inputResponses": {"b": blue}, "requestState": second["requestState"]}
    assert await _run_round(flow, last, _elicit("a"), _elicit("b", "Color?")) == [alice, blue]


async def test_an_answer_to_a_changed_question_is_not_used() -> None:
    flow = InputFlow(KEYS)
    first = await _run_round(flow, PARAMS, _elicit("a"))
    retry = {
        **PARAMS,
        "inputResponses": {"a": {"action": "decline"}, "extra": {"action": "accept"}},
        "requestState": first["requestState"],
    }
    again = await _run_round(flow, retry, _elicit("a", "Another question?"))
    assert list(again["inputRequests"]) == ["a"]


async def test_several_requests_of_one_run_go_out_together() -> None:
    flow = InputFlow(KEYS)
    round_ = flow.open("tools/call", PARAMS, _everything, VERSION)
    for key in ("x", "y"):
        with pytest.raises(ClientRequestError):
            await round_.on_request("elicitation/create", _elicit(key))
    with pytest.raises(ClientRequestError):
        await round_.on_request("roots/list", {"_meta": {INPUT_KEY_META: "z"}})

    async def failed() -> dict[str, Any]:
        raise WorkerLostError("gone after the refusal")

    result = await flow.run(round_, "tools/call", PARAMS, failed)
    assert set(result["inputRequests"]) == {"x", "y", "z"}
    assert result["inputRequests"]["z"] == {"method": "roots/list", "params": {}}


async def test_a_capability_the_client_lacks_fails_the_call_not_a_round() -> None:
    flow = InputFlow(KEYS)
    round_ = flow.open("tools/call", PARAMS, lambda capabilities: capabilities.roots is None, VERSION)
    with pytest.raises(ClientRequestError) as raised:
        await round_.on_request("roots/list", {})
    assert raised.value.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert not round_.needs_input


async def test_an_invalid_answer_is_refused_to_the_function() -> None:
    flow = InputFlow(KEYS)
    round_ = flow.open(
        "tools/call", {**PARAMS, "inputResponses": {"a": {"action": "maybe"}}}, _everything, VERSION
    )
    with pytest.raises(ClientRequestError) as raised:
        await round_.on_request("elicitation/create", _elicit("a"))
    assert raised.value.code == INVALID_PARAMS


async def test_a_request_without_a_key_gets_its_ordinal() -> None:
    round_ = InputRound({}, _everything, VERSION)
    with pytest.raises(ClientRequestError):
        await round_.on_request("roots/list", {})
    assert list(round_.pending) == ["roots-1"]


def test_the_key_is_taken_out_of_the_params_sent() -> None:
    assert take_input_key("roots/list", {"_meta": {INPUT_KEY_META: "k", "x": 1}}) == (
        "k",
        {"_meta": {"x": 1}},
    )
    assert take_input_key("roots/list", {"a": 1}) == (None, {"a": 1})
