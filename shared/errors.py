"""The error tree every process of mcp-supervisor shares.

::

    SupervisorError
    ├── ConfigError            bad configuration value (refused at start)
    ├── ProtocolError          a frame on the router⇄worker wire could not be decoded
    ├── ToolDefinitionError    a decorated function cannot become a tool
    ├── ClientRequestError     a request a tool made (sampling, elicitation, a tool call) failed
    └── CallError              a tool call could not be answered normally
        ├── UnknownToolError   no tool of that name (JSON-RPC -32602)
        ├── InvalidArgumentsError  arguments do not match the input schema (-32602)
        ├── ServerBusyError    admission limits reached
        ├── NoWorkerError      no ready worker for the tool's runtime
        ├── WorkerLostError    the worker died or was stopped while holding the call
        └── CallTimeoutError   the call outlived its deadline

``CallError.code`` is the JSON-RPC error code the front answers with when the error is a protocol error;
``CallError.is_protocol_error`` says which errors are protocol errors and which are tool execution
errors (``isError: true`` results), as the MCP specification separates them.
"""

from __future__ import annotations

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


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

    ``code`` is the JSON-RPC error code of the answer.
    """

    def __init__(self, message: str, code: int = INTERNAL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class CallError(SupervisorError):
    """A tool call could not be answered with the tool's own result."""

    code: int = INTERNAL_ERROR
    is_protocol_error: bool = False


class UnknownToolError(CallError):
    code = INVALID_PARAMS
    is_protocol_error = True


class InvalidArgumentsError(CallError):
    code = INVALID_PARAMS
    is_protocol_error = True


class ServerBusyError(CallError):
    pass


class NoWorkerError(CallError):
    pass


class WorkerLostError(CallError):
    pass


class CallTimeoutError(CallError):
    pass


def error_for_code(code: int, message: str) -> CallError:
    """Rebuild the error a worker reported in an ERROR frame."""
    if code == INVALID_PARAMS:
        return InvalidArgumentsError(message)
    return CallError(message)
