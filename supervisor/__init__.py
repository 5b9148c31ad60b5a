"""The supervisor process: MCP front, ZeroMQ router and the arbiter that keeps the workers alive."""

__version__ = "0.1.0"

__all__ = ["__version__"]
