"""The client shapes the end-to-end benchmark loads a server with: what real clients send with each
``tools/call``, as wrk ``Load``s.

- **plain stateless**: a 2026-07-28 request carrying the era and the client's capabilities in ``_meta``
  and the routing headers (``Mcp-Method``, ``Mcp-Name``) — the SDK's own stateless client without a
  progress callback (``wrk.stateless_load`` of ``mcp_client.call_body``);
- **stateless with notifications** (``notify_load``): the same, with a ``progressToken`` of its own per
  request and ``io.modelcontextprotocol/logLevel`` ``info``;
- **fastmcp's client** (``fastmcp_load``): what fastmcp 4.0.10 (on mcp 2.3.0) sends with every call, as
  recorded from its ``Client`` against the supervisor: stateless 2026-07-28 (after one ``server/discover``),
  its ``clientInfo``, a log level of ``debug`` and the request id as the progress token — its client always
  passes a progress handler;
- **handshake-era sessions** (``session_load``): the 2025-11-25 shape of the TypeScript SDK, the Inspector
  and most desktop clients: one ``initialize`` + ``notifications/initialized`` per session, then
  ``tools/call`` with ``Mcp-Session-Id`` and ``MCP-Protocol-Version: 2025-11-25`` and no ``_meta`` (the
  TypeScript SDK adds a progress token only when the caller passes ``onprogress``). wrk keeps no state per
  connection in its one thread, so each request goes to the next of ``SESSIONS`` sessions in turn: with as
  many connections, each session has about one request in flight, as one client per connection would.
  Request ids are distinct within the cycle (``ROUNDS`` per session), so two requests that do overlap on a
  session never share an id.
"""

from __future__ import annotations

import json

import httpx

from benchmarks.lib.mcp_client import (
    HANDSHAKE_HEADERS,
    HANDSHAKE_VERSION,
    PROTOCOL_VERSION,
    call_body,
    open_session,
)
from benchmarks.lib.wrk import Load, stateless_load

NOTIFY_BODIES = 64
"""Distinct progress tokens a notifying shape cycles through (a client sends a new one per call)."""
SESSIONS = 32
"""Sessions of the session shape (one per connection of the 32-connection runs)."""
ROUNDS = 64
"""Requests per session in the session shape's cycle, each with an id of its own."""
FASTMCP_CLIENT_INFO = {"name": "mcp", "version": "0.1.0"}
"""The ``clientInfo`` fastmcp 4.0.10's client sends (the SDK's default)."""


def notify_load(tool: str) -> Load:
    """Stateless calls of ``tool`` asking for progress (a token of their own) and log messages (``info``)."""
    requests = []
    for token in range(NOTIFY_BODIES):
        body = json.loads(call_body(tool, request_id=token + 1))
        body["params"]["_meta"] |= {"progressToken": token, "io.modelcontextprotocol/logLevel": "info"}
        requests.append((tool, json.dumps(body, separators=(",", ":"))))
    return stateless_load(requests)


def fastmcp_load(tool: str) -> Load:
    """Stateless calls of ``tool`` as fastmcp's client sends them."""
    requests = []
    for request_id in range(2, NOTIFY_BODIES + 2):
        meta = {
            "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
            "io.modelcontextprotocol/clientInfo": FASTMCP_CLIENT_INFO,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/logLevel": "debug",
            "progressToken": request_id,
        }
        params = {"name": tool, "arguments": {}, "_meta": meta}
        body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
        requests.append((tool, json.dumps(body, separators=(",", ":"))))
    return stateless_load(requests)


async def session_load(url: str, tool: str) -> Load:
    """Calls of ``tool`` on ``SESSIONS`` handshake-era sessions opened now on the server at ``url``.

    Raises:
        BenchmarkError: the server refused to open a session.
        httpx.HTTPError: a request failed.
    """
    async with httpx.AsyncClient(timeout=30) as client:
        sessions = [await open_session(client, url) for _ in range(SESSIONS)]
    params = {"name": tool, "arguments": {}}
    requests = [
        (
            {"Mcp-Session-Id": sessions[k % SESSIONS]},
            json.dumps(
                {"jsonrpc": "2.0", "id": k + 1, "method": "tools/call", "params": params},
                separators=(",", ":"),
            ),
        )
        for k in range(SESSIONS * ROUNDS)
    ]
    return Load(requests, {**HANDSHAKE_HEADERS, "MCP-Protocol-Version": HANDSHAKE_VERSION})
