"""The error tree every process of mcp-supervisor shares.

::

    SupervisorError
    ├── ConfigError            bad configuration value (refused at start)
    ├── ProtocolError          a frame on the router⇄worker wire could not be decoded
    ├── ToolDefinitionError    a decorated function cannot become a tool
    ├── ClientRequestError     a request a tool made (sampling, elicitation, a tool call) failed
    │   └── InputRequired      2026-07-28: the request goes to the client in an input_required result
    └── CallError              a tool call could not be answered normally
        ├── UnknownToolError   no tool of that name (JSON-RPC -32602)
        ├── InvalidArgumentsError  arguments do not match the input schema (a tool execution error)
        ├── MissingCapabilityError  the tool needed a capability the client did not declare (-32021)
        ├── ServerBusyError    admission limits reached
        ├── NoWorkerError      no ready worker for the tool's runtime
        ├── ToolQuarantinedError  the tool kept killing its worker: refused until its quarantine ends
        ├── WorkerLostError    the worker died or was stopped while holding the call
        └── CallTimeoutError   the call outlived its deadline

``CallError.code`` is the JSON-RPC error code the front answers with when the error is a protocol error;
``CallError.is_protocol_error`` says which errors are protocol errors and which are tool execution
errors (``isError: true`` results), as the MCP specification separates them.
"""

from __future__ import annotations

import re
from typing import Any

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
"""2026-07-28: processing the request needs a client capability the request's ``_meta`` did not declare."""
INPUT_PENDING = -32099
"""Router → worker only: the request was handed to the client in an ``input_required`` result; the run
ends (``InputRequired``). Never sent to a client."""


class SupervisorError(Exception):
    """Base of every error raised on purpose by mcp-supervisor."""


class ConfigError(SupervisorError):
    """A configuration value was refused; the message is one line naming key, value and what is allowed."""


class ProtocolError(SupervisorError):
    """A frame on the router⇄worker wire was malformed, oversized or of an unknown type or version."""


class ToolDefinitionError(SupervisorError):
    """A function decorated with ``@tool_metadata`` cannot be turned into a tool."""


class ClientRequestError(SupervisorError):
    """A request a tool made through its context was refused or failed: the client does not support it,
    answered with an error, or the tool called through ``ctx.call_tool`` does not exist.

    ``code`` is the JSON-RPC error code of the answer, ``data`` its ``error.data`` (or None).
    """

    def __init__(self, message: str, code: int = INTERNAL_ERROR, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class InputRequired(ClientRequestError):
    """2026-07-28: ``ctx.sample``/``ctx.elicit``/``ctx.list_roots`` has no answer yet; the server answers the
    call with ``input_required`` and runs the function again, with the answer, when the client retries.

    Let it propagate: whatever the function does after catching it is done for nothing.
    """


class CallError(SupervisorError):
    """A tool call could not be answered with the tool's own result."""

    code: int = INTERNAL_ERROR
    is_protocol_error: bool = False

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data
        """JSON-RPC ``error.data`` for a protocol error, or None."""


class UnknownToolError(CallError):
    code = INVALID_PARAMS
    is_protocol_error = True


class InvalidArgumentsError(CallError):
    """The arguments do not match the tool's input schema. A tool execution error (SEP-1303, final in
    2025-11-25): the client gets an ``isError`` result naming the field, which reaches the model, where a
    JSON-RPC error would end as an exception in the client. ``code`` is what the ERROR frame carries on
    the router⇄worker wire."""

    code = INVALID_PARAMS


class MissingCapabilityError(CallError):
    """A tool asked the client for something (sampling, elicitation) the client did not declare it
    supports, and did not handle the refusal: in the 2026-07-28 era the whole call fails with -32021."""

    code = MISSING_REQUIRED_CLIENT_CAPABILITY
    is_protocol_error = True


class ServerBusyError(CallError):
    pass


class NoWorkerError(CallError):
    pass


class ToolQuarantinedError(CallError):
    """The tool was running when its worker died ``quarantine_deaths`` times: its calls are refused, without
    reaching a worker, until the quarantine ends (``supervisor/quarantine.py``). A tool execution error:
    the client gets an ``isError`` result with the one-line message (it matches ``QUARANTINED``)."""


QUARANTINED = re.compile(r"tool ('[^']*'|\"[^\"]*\") is quarantined: its worker died (once|\d+ times) ")
"""How every ``ToolQuarantinedError`` message begins: how the task queue, which sees only the ``isError``
text, tells a quarantine from the tool's own failure (which begins ``tool 'x' failed: ``)."""


def is_quarantine_refusal(message: str) -> bool:
    """Whether an ``isError`` result's text is a quarantine's refusal (``ToolQuarantinedError``)."""
    return QUARANTINED.match(message) is not None


class WorkerLostError(CallError):
    pass


class CallTimeoutError(CallError):
    pass


def error_object(exc: Exception) -> dict[str, Any]:
    """The JSON-RPC error object for ``exc``: its ``code`` (internal error when it has none), message, and
    ``data`` when it has some."""
    error: dict[str, Any] = {"code": getattr(exc, "code", INTERNAL_ERROR), "message": str(exc)}
    data = getattr(exc, "data", None)
    if data is not None:
        error["data"] = data
    return error


def error_for_code(code: int, message: str, data: Any = None) -> CallError:
    """Rebuild the error a worker reported in an ERROR frame."""
    if code == INVALID_PARAMS:
        return InvalidArgumentsError(message, data)
    if code == MISSING_REQUIRED_CLIENT_CAPABILITY:
        return MissingCapabilityError(message, data)
    return CallError(message, data)
