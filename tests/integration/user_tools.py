"""Tools that report who they run as and try what a tool of another user should not manage, for the
``worker_user`` tests (``test_worker_user.py``)."""

from __future__ import annotations

import ctypes
import os
import socket
from typing import Any

from shared import tool_metadata

PR_GET_DUMPABLE = 3


def _identity() -> dict[str, Any]:
    libc = ctypes.CDLL(None, use_errno=True)
    return {
        "pid": os.getpid(),
        "uid": os.getresuid(),
        "gid": os.getresgid(),
        "groups": sorted(os.getgroups()),
        "home": os.environ.get("HOME"),
        "dumpable": libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0),
    }


@tool_metadata(runtime="asyncio")
async def it_identity_asyncio() -> dict[str, Any]:
    """Real, effective and saved ids, groups, HOME and the dumpable flag of the asyncio worker."""
    return _identity()


@tool_metadata(runtime="trio")
async def it_identity_trio() -> dict[str, Any]:
    """The same, from the Trio worker."""
    return _identity()


@tool_metadata(runtime="asyncio")
def it_read(path: str) -> str:
    """The file's text, or the name of the error that kept the tool from reading it."""
    try:
        with open(path, encoding="utf-8") as file:
            return "read: " + file.read()
    except OSError as exc:
        return f"refused: {type(exc).__name__}"


@tool_metadata(runtime="asyncio")
def it_connect(path: str) -> str:
    """Connect to the Unix socket at ``path``: ``connected``, or the name of the error."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError as exc:
            return f"refused: {type(exc).__name__}"
    return "connected"
