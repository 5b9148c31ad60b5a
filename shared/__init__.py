"""The package every mcp-supervisor process imports: tool metadata (and that of resources, templates,
prompts and completions), runtime detection, the tool context and the router⇄worker wire protocol. Runtime-neutral: nothing here depends on asyncio or Trio."""

from .context import ToolContext
from .detection import clear_cache, detect_runtime
from .errors import (
    CallError,
    CallTimeoutError,
    ClientRequestError,
    ConfigError,
    InputRequired,
    InvalidArgumentsError,
    NoWorkerError,
    ProtocolError,
    ServerBusyError,
    SupervisorError,
    ToolDefinitionError,
    UnknownToolError,
    WorkerLostError,
)
from .kinds import (
    EntryMetadata,
    EntryRegistry,
    completion_metadata,
    get_entry_registry,
    prompt_metadata,
    resource_metadata,
)
from .metadata import ToolMetadata, ToolMetadataRegistry, get_registry, tool_metadata
from .protocol import PROTOCOL_VERSION

__all__ = [
    "PROTOCOL_VERSION",
    "CallError",
    "CallTimeoutError",
    "ClientRequestError",
    "ConfigError",
    "EntryMetadata",
    "EntryRegistry",
    "InputRequired",
    "InvalidArgumentsError",
    "NoWorkerError",
    "ProtocolError",
    "ServerBusyError",
    "SupervisorError",
    "ToolContext",
    "ToolDefinitionError",
    "ToolMetadata",
    "ToolMetadataRegistry",
    "UnknownToolError",
    "WorkerLostError",
    "clear_cache",
    "completion_metadata",
    "detect_runtime",
    "get_entry_registry",
    "get_registry",
    "prompt_metadata",
    "resource_metadata",
    "tool_metadata",
]
