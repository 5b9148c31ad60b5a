"""A JSON body whose strings cannot be text (a lone surrogate such as ``"\\ud800"``) is a parse error.

JSON allows ``\\uD800`` escapes without their pair; Python's ``json.loads``, which the SDK's stateless
(2026-07-28) entry uses, turns them into ``str`` values that cannot be encoded as UTF-8, and the call
then failed deep in the router (``cannot encode Call``) with a traceback per request and a -32603
answer. The fast path's parser (orjson) refuses such bodies and hands them to the SDK, so both paths
came to the same failure. This wrapper stands in front of the SDK's ``/mcp`` and answers such a POST
itself: 400 with a JSON-RPC -32700 parse error, as the SDK answers a body that is not JSON.

The common body pays one ``bytes.find`` per possible escape: only a body holding ``\\ud8``..``\\udf``
(or the UTF-8-like bytes of a surrogate, which ``json.loads`` also lets through) is parsed here to decide.
A body over ``max_body_size`` is left to the SDK, which refuses it (413).
"""

from __future__ import annotations

import json
import re
from collections import deque

from mcp_types import PARSE_ERROR
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .request_body import read_body, replaying

_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_ANSWER = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": PARSE_ERROR, "message": "Parse error: a string is not valid text"},
    }
).encode()
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_ANSWER)).encode())]


class TextGuard:
    """ASGI wrapper: a POST to ``/mcp`` whose JSON body holds a string that is not valid text gets 400
    -32700; every other request reaches ``app`` with its body replayed."""

    def __init__(self, app: ASGIApp, max_body_size: int, path: str = "/mcp") -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        messages: deque[Message] = deque()
        body = await read_body(receive, messages, self.max_body_size)
        replay = replaying(messages, receive)
        if body is not None and not_text(body):
            await send({"type": "http.response.start", "status": 400, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _ANSWER})
            return
        await self.app(scope, replay, send)


def not_text(body: bytes) -> bool:
    """Whether ``body`` is JSON (as ``json.loads`` reads it) holding a string, key or value, that has no
    UTF-8 form: a lone surrogate. A body that is not JSON at all is the SDK's to answer: False."""
    if _MAYBE_SURROGATE.search(body) is None:
        return False
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return False
    try:
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False
    return False
