"""The private runtime directory: the router's ipc socket and the control socket live there.

Order of choice: the configured ``runtime_dir``; systemd's ``$RUNTIME_DIRECTORY``; otherwise a directory
named after the instance (``http-8001``, ``stdio-<pid>``) under ``$XDG_RUNTIME_DIR/mcp-supervisor`` or
``/tmp/mcp-supervisor-<uid>``, so that ``python -m supervisor ctl --port 8001`` can find it.
Every directory is owned by the supervisor's user with mode 0700; an existing one with another owner or
mode is refused, never changed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import stat
import tempfile
from pathlib import Path

from shared.errors import ConfigError

SOCKET_NAME = "router.sock"
CONTROL_NAME = "control.sock"
MAX_UNIX_PATH = 107


def instance_base() -> Path:
    """Where the default runtime directories of this user's supervisors live."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return Path(xdg) / "mcp-supervisor"
    return Path(tempfile.gettempdir()) / f"mcp-supervisor-{os.getuid()}"


def default_runtime_dir(instance: str) -> Path:
    """The runtime directory of instance ``http-<port>`` or ``stdio-<pid>`` (without creating it)."""
    systemd = os.environ.get("RUNTIME_DIRECTORY")
    if systemd:
        return Path(systemd.split(":")[0])
    return instance_base() / instance


class RuntimeDir:
    """Creates (or adopts) the directory; ``cleanup`` removes the sockets, and the directory when it is
    an instance directory of ours.

    Raises:
        ConfigError: the directory is not private, a socket path would be too long, or another
            supervisor is already serving on it.
    """

    def __init__(self, configured: Path | None, instance: str) -> None:
        self._owned = configured is None and not os.environ.get("RUNTIME_DIRECTORY")
        self.path = configured or default_runtime_dir(instance)
        if self._owned:
            _private_dir(self.path.parent)
        _private_dir(self.path)
        self.socket_path = self.path / SOCKET_NAME
        self.control_path = self.path / CONTROL_NAME
        for path in (self.socket_path, self.control_path):
            _claim(path, self.path)

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.socket_path}"

    def cleanup(self) -> None:
        """Remove the sockets, and the directory when it is ours; idempotent."""
        for path in (self.socket_path, self.control_path):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        if self._owned:
            with contextlib.suppress(OSError):
                self.path.rmdir()


def _private_dir(path: Path) -> None:
    if len(str(path / CONTROL_NAME)) > MAX_UNIX_PATH:
        raise ConfigError(
            f"invalid runtime_dir = {str(path)!r}: the socket paths would exceed {MAX_UNIX_PATH} characters"
        )
    try:
        path.mkdir(mode=0o700, parents=True)  # a new directory is private from the start
    except FileExistsError:
        pass  # an existing one is checked, never loosened or tightened behind the operator's back
    except OSError as exc:
        raise ConfigError(f"invalid runtime_dir = {str(path)!r}: {exc.strerror}") from None
    if not path.is_dir():
        raise ConfigError(f"invalid runtime_dir = {str(path)!r}: not a directory")
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"invalid runtime_dir = {str(path)!r}: owned by {describe_user(info.st_uid)}, not by this supervisor's "
            f"user {describe_user(os.getuid())}; it must be this user's, mode 0700"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        raise ConfigError(
            f"invalid runtime_dir = {str(path)!r}: must be owned by this user with mode 0700 "
            f"(it is mode {stat.S_IMODE(info.st_mode):04o})"
        )


def describe_user(uid: int) -> str:
    """``nobody (uid 65534)``, or ``uid 1234`` for a uid without a name."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _claim(path: Path, directory: Path) -> None:
    """Remove a socket left by a killed supervisor; refuse one that still answers."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
    else:
        raise ConfigError(f"runtime_dir {str(directory)!r} is in use by another running supervisor")
    finally:
        probe.close()
