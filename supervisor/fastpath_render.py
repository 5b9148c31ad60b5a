"""The fast path's answers, rendered as the SDK renders them: a result shaped by the SDK's per-version
surface, with the ``serverInfo`` stamp from 2026-07-28 on (handshake-era results are never stamped), and
the serialized JSON-RPC response around it.

The common ``tools/call`` result (text blocks, ``isError``, structured content; ``resultType`` from
2026-07-28 on) skips the pydantic sieve, which would return it unchanged; everything else goes through
``serialize_server_result``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
import pydantic
from mcp_types import SERVER_INFO_META_KEY
from mcp_types import methods as spec_methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

logger = logging.getLogger("mcp_supervisor.fastpath")


class InvalidResult(Exception):
    """A result the per-version surface refuses."""


class ResultRenderer:
    """Serializes results with the server's ``serverInfo`` stamp."""

    def __init__(self, server_info_stamp: Any) -> None:
        self._stamp = {SERVER_INFO_META_KEY: server_info_stamp}  # only ever serialized, never changed

    def serialize(self, method: str, version: str, result: dict[str, Any]) -> bytes:
        """The result as the SDK's per-version surface shapes it, with the ``serverInfo`` stamp from
        2026-07-28 on.

        Raises:
            InvalidResult: it does not fit the surface (logged: a server bug, not the client's).
        """
        modern = version in MODERN_PROTOCOL_VERSIONS
        passed_through = _passes_through(method, result, modern)
        shaped = result if passed_through else _sieve(method, version, result)
        try:
            return orjson.dumps(self._stamped(shaped) if modern else shaped)
        except orjson.JSONEncodeError:  # bytes, or an integer past 64 bits: the SDK's own rendering
            shaped = _sieve(method, version, result) if passed_through else shaped
            return json.dumps(self._stamped(shaped) if modern else shaped, separators=(",", ":")).encode()

    def extension(self, result: dict[str, Any]) -> bytes:
        """An extension's result (a task), serialized as the SDK does: stamped, never sieved (the
        per-version surface does not describe it)."""
        return orjson.dumps(self._stamped(result))

    def _stamped(self, shaped: dict[str, Any]) -> dict[str, Any]:
        """``shaped`` with the ``serverInfo`` stamp in its ``_meta`` (a handler-set value wins)."""
        meta = shaped.get("_meta")
        if meta is None:
            shaped["_meta"] = self._stamp
        elif isinstance(meta, dict) and meta.get(SERVER_INFO_META_KEY) is None:
            shaped["_meta"] = {**meta, **self._stamp}
        return shaped


_PLAIN_RESULT_KEYS = frozenset({"content", "isError", "resultType", "structuredContent"})
_REQUIRED_RESULT_KEYS = frozenset({"content", "isError", "resultType"})
_HANDSHAKE_RESULT_KEYS = frozenset({"content", "isError", "structuredContent"})
_HANDSHAKE_REQUIRED_KEYS = frozenset({"content", "isError"})
_TEXT_BLOCK_KEYS = {"type", "text"}


def _passes_through(method: str, result: dict[str, Any], modern: bool = True) -> bool:
    """Whether the per-version surface returns ``result`` unchanged: a ``tools/call`` result of text
    blocks, ``isError`` and structured content only (the common case; with ``resultType`` from
    2026-07-28 on, without it before), which the pydantic sieve would only re-validate and copy."""
    keys = result.keys()
    allowed, required = (
        (_PLAIN_RESULT_KEYS, _REQUIRED_RESULT_KEYS)
        if modern
        else (_HANDSHAKE_RESULT_KEYS, _HANDSHAKE_REQUIRED_KEYS)
    )
    if method != "tools/call" or keys - allowed or not keys >= required:
        return False
    content = result["content"]
    return (
        (not modern or result["resultType"] == "complete")
        and type(result["isError"]) is bool
        and isinstance(result.get("structuredContent", {}), dict)
        and type(content) is list
        and all(
            type(block) is dict
            and block.keys() == _TEXT_BLOCK_KEYS
            and block["type"] == "text"
            and type(block["text"]) is str
            for block in content
        )
    )


def _sieve(method: str, version: str, result: dict[str, Any]) -> dict[str, Any]:
    """The result as the SDK's per-version surface shapes it (validated, unknown fields dropped).

    Raises:
        InvalidResult: it does not fit the surface (logged: a server bug, not the client's).
    """
    try:
        return spec_methods.serialize_server_result(method, version, result)
    except pydantic.ValidationError:
        logger.exception("handler for %r returned an invalid result", method)
        raise InvalidResult from None


def response_body(request_id: int | str, result: bytes | None, error: dict[str, Any] | None) -> bytes:
    """One JSON-RPC response, serialized: ``result`` is already JSON."""
    if result is not None:
        return b'{"jsonrpc":"2.0","id":' + orjson.dumps(request_id) + b',"result":' + result + b"}"
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": error})
