"""One 2026-07-28 ``tools/call`` over HTTP, as a client of the stateless protocol era sends it: a
self-contained POST carrying the era and the client's capabilities in ``_meta`` and the routing headers."""

from __future__ import annotations

import json
from typing import Any

import httpx

from benchmarks.lib.results import BenchmarkError

PROTOCOL_VERSION = "2026-07-28"
"""The stateless protocol era every HTTP benchmark speaks: one self-contained POST per call."""


def call_body(tool: str, arguments: dict[str, Any] | None = None, request_id: int = 1) -> str:
    """A 2026-07-28 ``tools/call`` request: self-contained, the era and capabilities in ``_meta``."""
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {
                "name": tool,
                "arguments": arguments or {},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        },
        separators=(",", ":"),
    )


def call_headers(tool: str) -> dict[str, str]:
    """The headers a 2026-07-28 request carries (the routing headers repeat the body's method and name)."""
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }


def parse_answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response, whether the server answered in JSON or as one SSE event.

    Raises:
        BenchmarkError: an SSE answer without a result or an error.
    """
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        messages = [
            json.loads(line[5:])
            for line in response.text.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
        answers = [m for m in messages if "result" in m or "error" in m]
        if not answers:
            raise BenchmarkError(f"an SSE answer without a result: {response.text[:300]!r}")
        return answers[-1]  # type: ignore[no-any-return]
    return response.json()  # type: ignore[no-any-return]


async def post_call(
    client: httpx.AsyncClient, url: str, tool: str, arguments: dict[str, Any] | None = None
) -> httpx.Response:
    """POST one ``tools/call`` of ``tool`` to ``url``.

    Raises:
        httpx.HTTPError: the request failed.
    """
    return await client.post(url, content=call_body(tool, arguments), headers=call_headers(tool))


async def call_tool(
    client: httpx.AsyncClient, url: str, tool: str, arguments: dict[str, Any] | None = None
) -> tuple[bool, str]:
    """One ``tools/call``: ``(ok, text)``; ``ok`` only for HTTP 200 with a result that is not an error.

    Raises:
        httpx.HTTPError: the request failed.
    """
    response = await post_call(client, url, tool, arguments)
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}: {response.text[:200]}"
    answer = parse_answer(response)
    result = answer.get("result")
    if not isinstance(result, dict):
        return False, f"no result: {json.dumps(answer)[:200]}"
    text = "".join(block.get("text", "") for block in result.get("content", []) if isinstance(block, dict))
    return not result.get("isError", False), text


HANDSHAKE_VERSION = "2025-11-25"
"""The handshake protocol era (sessions) the session client shape speaks."""
HANDSHAKE_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def open_session(client: httpx.AsyncClient, url: str) -> str:
    """Open a handshake-era session as its clients do (``initialize``, then ``notifications/initialized``);
    returns its ``Mcp-Session-Id``.

    Raises:
        BenchmarkError: the server refused either step.
        httpx.HTTPError: a request failed.
    """
    params = {
        "protocolVersion": HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    }
    opened = await client.post(
        url,
        json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
        headers=HANDSHAKE_HEADERS,
    )
    session_id: str | None = opened.headers.get("mcp-session-id")
    if opened.status_code != 200 or session_id is None:
        raise BenchmarkError(f"initialize answered HTTP {opened.status_code}: {opened.text[:200]}")
    headers = {**HANDSHAKE_HEADERS, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": HANDSHAKE_VERSION}
    initialized = await client.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    if initialized.status_code != 202:
        raise BenchmarkError(f"notifications/initialized answered HTTP {initialized.status_code}")
    return session_id
