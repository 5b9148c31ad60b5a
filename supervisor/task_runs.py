"""One run of an MCP task's tool call, for the task queue (a ``tools/call`` request carrying ``task``).

The queue (``trio-queue``) runs a protocol task as its own request to the router, with what the task keeps
of its client: the capabilities and protocol version its requests to the client are checked against,
and the answers the client gave so far. A run is one round of the input-required flow
(``input_required.InputRound``): the function's requests are answered from those answers, and one with
no answer yet ends the run; the reply then carries ``resultType: "input_required"`` with the requests
(``inputRequests``) and what each answer will be bound to (``asked``), and the queue parks the task until
``tasks/update`` brings the answers and runs it again. ``ctx.run_as_task()`` returns at once: the call is
a task already.

What the reply says about how the call ended, for the task's final state (SEP-2663):

- the tool's result, ``isError`` or not (the task completes with it); a busy server, a quarantined tool
  and arguments the tool refuses are ``isError`` results too, as a client's call gets them (the queue
  tries a busy call, or a quarantined tool's, again later);
- an error REPLY for a protocol-level failure: the worker died and the call was not sent again, no worker
  became ready, the deadline passed (the call carries ``TASK_RUN_META``, so the worker reports its
  timeout as an error, not as a tool result), a capability the client lacks (-32021) — the task fails
  with it.

The call's ``_meta`` also carries the task's client capabilities and protocol version, as a client's
request does, so ``ctx.meta`` tells the function what it may ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.connection import Connection
from mcp_types import CLIENT_CAPABILITIES_META_KEY, PROTOCOL_VERSION_META_KEY, ClientCapabilities
from mcp_types.version import LATEST_PROTOCOL_VERSION

from shared.context import TASK_RUN_META
from shared.errors import (
    INVALID_PARAMS,
    CallError,
    ClientRequestError,
    InvalidArgumentsError,
    ServerBusyError,
    ToolQuarantinedError,
    error_object,
)
from shared.principal import PRINCIPAL_META
from shared.results import error_result

from .input_required import InputRound
from .router_types import ProgressCallback, ToolCaller

PROGRESS_TOKEN = "task"
"""The progress token of a task's runs: their progress goes to the task (its ``statusMessage``)."""


async def run_task_call(
    caller: ToolCaller, params: Mapping[str, Any], on_progress: ProgressCallback
) -> dict[str, Any]:
    """Run one round of a task's tool call (see the module docstring) and return the reply's result.

    ``params``: ``name``, ``arguments``, ``timeout`` (seconds; the router's ``request_timeout`` when
    absent) and ``task`` (``{"client": {"capabilities", "protocolVersion"}, "answers": {...}}``).

    Raises:
        ClientRequestError: the params are malformed (-32602), or the call ended with a protocol-level
            failure (its code, message and data).
    """
    name, arguments, timeout = params.get("name"), params.get("arguments"), params.get("timeout")
    task = params.get("task")
    if (
        not isinstance(name, str)
        or not isinstance(arguments, (dict, type(None)))
        or not isinstance(task, dict)
    ):
        raise ClientRequestError("a task's tools/call needs a tool name, arguments and task", INVALID_PARAMS)
    client: dict[str, Any] = task["client"] if isinstance(task.get("client"), dict) else {}
    answers: dict[str, Any] = task["answers"] if isinstance(task.get("answers"), dict) else {}
    version = client.get("protocolVersion")
    version = version if isinstance(version, str) else LATEST_PROTOCOL_VERSION
    round_ = InputRound(dict(answers), _supports(version, client.get("capabilities")), version)
    try:
        result = await caller.call(
            name,
            arguments,
            timeout=float(timeout) if timeout is not None else caller.request_timeout,
            meta=_run_meta(version, client),
            progress_token=PROGRESS_TOKEN,  # the tool reports progress only when a token asks for it
            on_progress=on_progress,
            on_request=round_.on_request,
        )
    except CallError as exc:
        if round_.needs_input:
            return _input_required(round_)
        if isinstance(exc, (ServerBusyError, InvalidArgumentsError, ToolQuarantinedError)):
            return error_result(str(exc))
        raise ClientRequestError(**error_object(exc)) from None
    return _input_required(round_) if round_.needs_input else result


def _run_meta(version: str, client: dict[str, Any]) -> dict[str, Any]:
    """A run's ``_meta``: a task run (its timeout fails it), the client's capabilities and protocol
    version, and the principal that created the task (``ctx.principal``), as a request of its own had."""
    meta: dict[str, Any] = {
        TASK_RUN_META: True,
        PROTOCOL_VERSION_META_KEY: version,
        CLIENT_CAPABILITIES_META_KEY: client.get("capabilities") or {},
    }
    if isinstance(client.get("principal"), dict):
        meta[PRINCIPAL_META] = client["principal"]
    return meta


def _input_required(round_: InputRound) -> dict[str, Any]:
    return {"resultType": "input_required", "inputRequests": round_.pending, "asked": round_.asked}


def _supports(version: str, capabilities: Any) -> Any:
    """Whether the task's client declared a capability, by the SDK's own rule."""
    declared = capabilities if isinstance(capabilities, dict) else {}

    def supports(capability: ClientCapabilities) -> bool:
        return Connection.from_envelope(version, None, declared).check_capability(capability)

    return supports
