"""The keys that seal request states: the operator's, or one kept in the state directory.

``state_keys`` (setting, environment ``MCP_SUPERVISOR_STATE_KEYS``, comma-separated) lists secrets of at
least 32 characters; the first seals, all open, so a key is rotated in three steps: ``[old, new]``, then
``[new, old]``, then ``[new]`` once a ``request_state_ttl`` has passed. Supervisors behind one balancer share
the list.

Without the setting, one key is generated the first time and kept in ``request-state.key`` in the state
directory (``shared.statedir``; the directory made 0700, the file 0600, created exclusively so two
supervisors starting at once agree on one key). A restart reads the same key, so the states handed out
before it still open.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from shared.errors import ConfigError
from shared.statedir import state_directory

KEY_FILE_NAME = "request-state.key"
MIN_KEY_LENGTH = 32


def load_state_keys(configured: Sequence[str], directory: Path | None = None) -> list[bytes]:
    """The key ring: ``configured`` when set, else the state directory's key (made on first use).

    Raises:
        ConfigError: a configured key is too short, or the key file cannot be made or read.
    """
    if configured:
        keys = [key.encode() for key in configured]
        for index, key in enumerate(keys):
            if len(key) < MIN_KEY_LENGTH:
                raise ConfigError(
                    f"state_keys[{index}] is {len(key)} characters; a request-state key needs at least "
                    f"{MIN_KEY_LENGTH} (make one with: python -c 'import secrets; print(secrets.token_hex(32))')"
                )
        return keys
    return [_kept_key((directory or state_directory()) / KEY_FILE_NAME)]


def _kept_key(path: Path) -> bytes:
    """The key in ``path``, written first (0600, exclusively) when there is none."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32) + "\n")
        key = path.read_text(encoding="ascii").strip().encode()
    except OSError as exc:
        raise ConfigError(
            f"request-state key file {str(path)!r} cannot be made or read: {exc.strerror}"
        ) from None
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"request-state key file {str(path)!r} holds a key shorter than {MIN_KEY_LENGTH}")
    return key
