"""Where mcp-supervisor keeps state that outlives its processes (the task database, the request-state key)."""

from __future__ import annotations

import os
from pathlib import Path


def state_directory() -> Path:
    """``$STATE_DIRECTORY`` (systemd's StateDirectory, its first entry), else ``$XDG_STATE_HOME`` or
    ``~/.local/state``, in a ``mcp-supervisor`` folder. Not created here."""
    systemd = os.environ.get("STATE_DIRECTORY")
    if systemd:
        return Path(systemd.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "mcp-supervisor"
