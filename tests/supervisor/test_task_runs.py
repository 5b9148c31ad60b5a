"""One run of an MCP task's tool call (``supervisor.task_runs``): answered from the task's answers, parked
when it needs more, and how each way of ending reaches the queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.context import INPUT_KEY_META, START_TASK_METHOD, TASK_RUN_META
from shared.errors import (
    ClientRequestError,
    InvalidArgumentsError,
    MissingCapabilityError,
    ServerBusyError,
    WorkerLostError,
)
from shared.principal import PRINCIPAL_META
from supervisor.input_required import request_digest
from supervisor.task_runs import run_task_call

pytestmark = pytest.mark.anyio

ELICIT = {"mode": "form", "message": "Name?", "requestedSchema": {"type": "object", "properties": {}}}
CLIENT = {"capabilities": {"elicitation": {}}, "protocolVersion": "2026-07-28"}

Function = Callable[[Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]], Awaitable[dict[str, Any]]]


class FunctionCaller:
    """Runs ``function(on_request)`` as the call's tool, as the router would."""

    request_timeout = 30.0

    def __init__(self, function: Function) -> None:
        self.function = function
        self.timeouts: list[float] = []
        self.metas: list[dict[str, Any]] = []

    async def call(
        self, tool: str, arguments: Any, *, timeout: float, meta: dict[str, Any], on_request: Any, **_: Any
    ) -> dict[str, Any]:
        self.timeouts.append(timeout)
        self.metas.append(meta)
        return await self.function(on_request)


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


async def ask_name(on_request: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    await on_request(START_TASK_METHOD, {})  # a task already: goes on
    try:
        answer = await on_request("elicitation/create", {**ELICIT, "_meta": {INPUT_KEY_META: "name"}})
    except ClientRequestError as exc:  # the tool's own failure, as a worker reports it
        return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
    return text(f"Hello, {answer['content']['name']}!")


def params(answers: dict[str, Any] | None = None, timeout: float | None = 5.0) -> dict[str, Any]:
    return {
        "name": "greet",
        "arguments": {},
        "timeout": timeout,
        "task": {"client": CLIENT, "answers": answers or {}},
    }


async def no_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


async def test_a_request_without_an_answer_parks_the_task_with_what_to_ask_and_its_binding() -> None:
    reply = await run_task_call(FunctionCaller(ask_name), params(), no_progress)
    assert reply["resultType"] == "input_required"
    assert reply["inputRequests"] == {"name": {"method": "elicitation/create", "params": ELICIT}}
    assert reply["asked"] == {"name": request_digest("elicitation/create", ELICIT)}


async def test_the_next_run_is_answered_from_the_task_s_answers() -> None:
    answer = {"action": "accept", "content": {"name": "Ada"}}
    digest = request_digest("elicitation/create", ELICIT)
    caller = FunctionCaller(ask_name)
    reply = await run_task_call(
        caller, params({"name": {"q": digest, "r": answer}}, timeout=None), no_progress
    )
    assert reply == text("Hello, Ada!")
    assert caller.timeouts == [30.0]  # the router's request_timeout when the queue gives none
    assert caller.metas == [  # a task run (its timeout fails it), with what the client declared
        {
            TASK_RUN_META: True,
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        }
    ]


async def test_an_answer_bound_to_another_request_is_asked_again() -> None:
    answer = {"action": "accept", "content": {"name": "Ada"}}
    reply = await run_task_call(
        FunctionCaller(ask_name), params({"name": {"q": "other", "r": answer}}), no_progress
    )
    assert reply["resultType"] == "input_required"


@pytest.mark.parametrize(
    "error", [ServerBusyError("server busy: 5 calls queued"), InvalidArgumentsError("n: bad")]
)
async def test_a_busy_server_and_refused_arguments_are_results_as_a_client_gets_them(
    error: Exception,
) -> None:
    async def fail(on_request: Any) -> dict[str, Any]:
        raise error

    reply = await run_task_call(FunctionCaller(fail), params(), no_progress)
    assert reply["isError"] is True and str(error) in reply["content"][0]["text"]


@pytest.mark.parametrize(
    ("error", "code"),
    [(WorkerLostError("worker asyncio-0 died"), -32603), (MissingCapabilityError("no roots"), -32021)],
)
async def test_a_protocol_level_failure_is_an_error_with_its_code(error: Exception, code: int) -> None:
    async def fail(on_request: Any) -> dict[str, Any]:
        raise error

    with pytest.raises(ClientRequestError) as failed:
        await run_task_call(FunctionCaller(fail), params(), no_progress)
    assert failed.value.code == code and str(error) in str(failed.value)


async def test_malformed_params_are_refused() -> None:
    with pytest.raises(ClientRequestError) as refused:
        await run_task_call(FunctionCaller(ask_name), {"name": "greet", "task": "x"}, no_progress)
    assert refused.value.code == -32602


async def test_a_run_carries_the_principal_that_made_the_task() -> None:
    caller = FunctionCaller(ask_name)
    principal = {"subject": "alice", "scopes": ["mcp:use"], "claims": {}}
    task = {"client": {**CLIENT, "principal": principal}, "answers": {}}
    await run_task_call(caller, {**params(), "task": task}, no_progress)
    assert caller.metas[0][PRINCIPAL_META] == principal
