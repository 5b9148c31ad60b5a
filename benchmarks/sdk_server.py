"""The single-process baselines of ``python -m benchmarks``: the same tools, served by the ``mcp`` SDK alone.

``python -m benchmarks.sdk_server --port N --flavour F --parent-pid P``, where ``F`` is

- ``mcpserver``: ``mcp.server.mcpserver.MCPServer`` (what one writes with the SDK alone; the baseline of
  every end-to-end ratio), its ``streamable_http_app()`` with the SDK's defaults;
- ``lowlevel``: the SDK's low-level ``Server`` with ``on_list_tools``/``on_call_tool`` handlers, the same
  object the supervisor's front is built on, its ``streamable_http_app()`` with the SDK's defaults;
- ``asgi``: no MCP at all, a bare ASGI app answering every POST with the bytes of a ``tools/call`` result:
  the ceiling of uvicorn plus the load generator on this machine, to show the load generator is not what
  limits the MCP servers.

Every flavour serves the tools of ``benchmarks.noop_tools`` and ``benchmarks.bench_tools`` under the same
names, running the same function bodies in its one event loop. It runs uvicorn on uvloop (as the
supervisor does), without access log, on a socket bound to 127.0.0.1 before uvicorn starts. It asks Linux
to kill it when the benchmark dies (``benchmarks.lib.lifeline``) and exits at once if the benchmark is
already gone; uvicorn stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer

from benchmarks.bench_tools import SPIN_DEFAULT, spin_loop
from benchmarks.lib.lifeline import die_with_parent

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

FLAVOURS = ("mcpserver", "lowlevel", "asgi")
NAME = "sdk-baseline"


# The tools: the bodies of benchmarks.noop_tools and benchmarks.bench_tools, in this one process.


async def noop_asyncio() -> str:
    """Return ``ok`` at once."""
    return "ok"


async def noop_trio() -> str:
    """Return ``ok`` at once (same loop as every other tool: there is only one here)."""
    return "ok"


async def spin_asyncio(iterations: int = SPIN_DEFAULT) -> str:
    """Burn CPU in the event loop thread."""
    return str(spin_loop(iterations))


async def block_asyncio(seconds: float = 1.0) -> str:
    """Block the event loop (``time.sleep`` in an ``async def``)."""
    time.sleep(seconds)
    return "blocked"


async def work_asyncio(seconds: float = 0.2) -> str:
    """Wait without blocking."""
    await asyncio.sleep(seconds)
    return "done"


TOOLS: dict[str, Callable[..., Awaitable[str]]] = {
    "noop_asyncio": noop_asyncio,
    "noop_trio": noop_trio,
    "spin_asyncio": spin_asyncio,
    "spin_trio": spin_asyncio,
    "block_asyncio": block_asyncio,
    "block_trio": block_asyncio,
    "work_asyncio": work_asyncio,
    "work_trio": work_asyncio,
}
_NUMBER_ARGUMENT = {
    "spin": ("iterations", "integer"),
    "block": ("seconds", "number"),
    "work": ("seconds", "number"),
}


def mcpserver_app() -> Any:
    server: MCPServer[Any] = MCPServer(NAME, log_level="WARNING")
    for name, func in TOOLS.items():
        server.add_tool(func, name=name, structured_output=False)  # content only, like the supervisor's
    return server.streamable_http_app()


def lowlevel_app() -> Any:
    def schema(name: str) -> dict[str, Any]:
        argument = _NUMBER_ARGUMENT.get(name.partition("_")[0])
        properties = {} if argument is None else {argument[0]: {"type": argument[1]}}
        return {"type": "object", "properties": properties}

    listing = types.ListToolsResult(
        tools=[types.Tool(name=name, input_schema=schema(name)) for name in TOOLS]
    )

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return listing

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        func = TOOLS.get(params.name)
        if func is None:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=f"unknown tool {params.name!r}")], is_error=True
            )
        text = await func(**(params.arguments or {}))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=False)

    server: Server[Any] = Server(NAME, on_list_tools=list_tools, on_call_tool=call_tool)
    return server.streamable_http_app()


def asgi_app() -> Any:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "content": [{"type": "text", "text": "ok"}],
                "isError": False,
                "resultType": "complete",
            },
        },
        separators=(",", ":"),
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:  # read the request body, as any server must
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def serve(flavour: str, sock: socket.socket) -> None:
    app = {"mcpserver": mcpserver_app, "lowlevel": lowlevel_app, "asgi": asgi_app}[flavour]()
    config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning", access_log=False)
    await uvicorn.Server(config).serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sdk_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--flavour", choices=FLAVOURS, default="mcpserver")
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    sock.setblocking(False)
    if uvloop is not None:
        uvloop.run(serve(args.flavour, sock))
    else:  # pragma: no cover
        asyncio.run(serve(args.flavour, sock))


if __name__ == "__main__":
    main()
