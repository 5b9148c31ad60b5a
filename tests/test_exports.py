"""The public surface of each package, pinned: a change here is a change users see."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "shared": {
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
    },
    "shared.worker": {"PreparedCall", "ProgressCallback", "ToolHost", "WorkerCore", "run_worker"},
    "supervisor": {"__version__"},
    "asyncio_worker": {"AsyncioWorker", "serve"},
    "trio_worker": {"TrioWorker", "serve"},
    "shared.zmqio": set(),
}


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_public_names_are_pinned_and_importable(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == EXPECTED[package]
    for name in module.__all__:
        assert hasattr(module, name), name
