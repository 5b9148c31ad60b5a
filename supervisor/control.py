"""The control interface: a unix socket (mode 0600, in the private runtime directory) taking one JSON
command per line and answering one JSON line.

Commands (request → answer ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "<one line>"}``):

- ``{"command": "status"}`` → the /status document
- ``{"command": "reload"}`` → re-read the configuration and replace every worker (like SIGHUP)
- ``{"command": "restart", "target": "trio" | "trio-0"}`` → replace the workers of a runtime, or one worker
- ``{"command": "scale", "runtime": "asyncio", "count": 3}`` → run that many workers of the runtime
- ``{"command": "release", "tool": "crash"}`` → lift a tool's quarantine (``quarantine.py``) and clear its
  death count; an unknown or unquarantined tool is an error naming it
- ``{"command": "stop"}`` → stop gracefully (like SIGTERM)

A peer is identified by the kernel (``SO_PEERCRED``): ``refuse(pid, uid)`` may turn it away: one line is logged
when it connects and every command it sends is answered ``{"ok": false, "error": "refused: <why>"}``
(the supervisor refuses its own workers and whatever their tools start: ``containment.refuse_peer``).

``request`` is the blocking client ``python -m supervisor ctl`` and ``top`` use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("mcp_supervisor.control")

MAX_LINE = 64 * 1024
Handler = Callable[[dict[str, Any]], Awaitable[Any]]
PeerCheck = Callable[[int, int], "str | None"]
"""``(pid, uid)`` of a peer → why it is refused, or None."""


class CommandError(Exception):
    """A command was refused or failed; the message is the one line the client sees."""


class ControlServer:
    """Serves the commands in ``handlers`` (name → coroutine taking the request) on ``path``."""

    def __init__(self, path: Path, handlers: dict[str, Handler], refuse: PeerCheck | None = None) -> None:
        self.path = path
        self.handlers = handlers
        self.refuse = refuse
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen; the socket is created with mode 0600 (only this user may connect)."""
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve_client, str(self.path), limit=MAX_LINE)
        finally:
            os.umask(old_umask)

    async def aclose(self) -> None:
        """Stop listening; idempotent."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            refusal = self._refusal(writer)
            while line := await reader.readline():
                if refusal is not None:
                    answer: dict[str, Any] = {"ok": False, "error": f"refused: {refusal}"}
                else:
                    answer = await self._answer(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError):
            pass  # a client that went away, or a line over MAX_LINE
        finally:
            writer.close()

    def _refusal(self, writer: asyncio.StreamWriter) -> str | None:
        """Why this connection's peer is refused (logged), or None."""
        sock = writer.get_extra_info("socket")
        if self.refuse is None or sock is None or not hasattr(socket, "SO_PEERCRED"):
            return None
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        refusal = self.refuse(pid, uid)
        if refusal is not None:
            logger.warning("control connection refused: %s", refusal)
        return refusal

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise CommandError('a request is a JSON object with a "command" string')
            handler = self.handlers.get(request["command"])
            if handler is None:
                raise CommandError(
                    f"unknown command {request['command']!r}; known: {', '.join(self.handlers)}"
                )
            return {"ok": True, "result": await handler(request)}
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        except Exception as exc:
            logger.exception("control command failed")
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def request(path: Path, command: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send one command and return the answer.

    Raises:
        ConnectionError: nothing listens at ``path`` (no supervisor running there).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ConnectionError(f"no supervisor is listening at {path}") from exc
        sock.sendall(json.dumps(command).encode() + b"\n")
        buffer = b""
        while not buffer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"the supervisor at {path} closed the connection")
            buffer += chunk
    answer: dict[str, Any] = json.loads(buffer)
    return answer
