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


def lock_path(database: Path) -> Path:
    """The lock file that makes one task queue the only user of ``database`` (``<database>.lock``)."""
    return database.with_name(database.name + ".lock")


def lock_holder(database: Path) -> int | None:
    """The pid written in ``database``'s lock file while another process holds the lock, else ``None``
    (also when there is no lock file, or the holder wrote no pid: then ``0``). Never creates a file and
    never keeps the lock: a probe, so a later open can still lose a race and must check again."""
    import fcntl

    try:
        fd = os.open(lock_path(database), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
