"""Reading a request's body in an ASGI wrapper without taking it from the app behind.

The fast path, the text guard and the authorization layer each look at a POST's body before deciding
whether to answer it themselves; whatever they read, the app they hand the request to must read again.
"""

from __future__ import annotations

from collections import deque

from starlette.types import Message, Receive


async def read_body(receive: Receive, messages: deque[Message], limit: int) -> bytes | None:
    """The whole body, every message read kept in ``messages`` (for ``replaying``); ``None`` when it is
    over ``limit`` bytes or the client went away before its end (the app answers that)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replaying(messages: deque[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives back ``messages`` first, then goes on with ``receive``."""

    async def replay() -> Message:
        return messages.popleft() if messages else await receive()

    return replay
