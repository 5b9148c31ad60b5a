"""Pages of the four lists (``tools/list``, ``resources/list``, ``resources/templates/list``,
``prompts/list``).

A list is sorted by its entries' keys (a tool's or a prompt's name, a resource's URI, a template), and a
cursor is the key of the last entry of the page before, encoded: the next page starts after that key. So a
cursor stays valid when the catalog changes between two pages (a worker restarted with other tools): the
client sees each entry that stayed at most once, and no page is skipped. Clients must treat a cursor as
opaque (the MCP specification says so).
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Sequence
from typing import TypeVar

from mcp.shared.exceptions import MCPError

from shared.errors import INVALID_PARAMS

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 500
"""Entries per page unless the ``list_page_size`` setting says otherwise."""


def page(
    items: Sequence[T], keys: Sequence[str], cursor: str | None, size: int
) -> tuple[Sequence[T], str | None]:
    """The page of ``items`` (sorted by ``keys``, one key each) that ``cursor`` points to, and the cursor of
    the next page (None on the last page).

    Raises:
        MCPError: -32602, the cursor was not made by this function.
    """
    start = 0 if cursor is None else bisect.bisect_right(keys, _decode(cursor))
    end = start + size
    if start == 0 and end >= len(items):
        return items, None
    next_cursor = _encode(keys[end - 1]) if end < len(items) else None
    return items[start:end], next_cursor


def _encode(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        padded = (cursor + "=" * (-len(cursor) % 4)).encode()
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MCPError(INVALID_PARAMS, f"invalid cursor {cursor[:64]!r}: not one this server gave") from None
