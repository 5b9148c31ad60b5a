"""The private runtime directory that holds the router's ipc socket (mode 0700, owned by us)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from shared.errors import ConfigError

SOCKET_NAME = "router.sock"
MAX_UNIX_PATH = 107


class RuntimeDir:
    """Creates (or adopts) the directory and removes what it created on ``cleanup``.

    Order of choice: the configured ``runtime_dir``; systemd's ``$RUNTIME_DIRECTORY``; a new directory
    under ``$XDG_RUNTIME_DIR`` or the system temporary directory.

    Raises:
        ConfigError: the directory cannot be made private, the socket path is too long, or another
            supervisor is already serving on it.
    """

    def __init__(self, configured: Path | None) -> None:
        self._owned = False
        chosen = configured or (
            Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0])
            if os.environ.get("RUNTIME_DIRECTORY")
            else None
        )
        if chosen is None:
            base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
            if not os.path.isdir(base) or not os.access(base, os.W_OK):
                base = tempfile.gettempdir()
            self.path = Path(tempfile.mkdtemp(prefix="mcp-supervisor-", dir=base))
            self._owned = True
        else:
            self.path = chosen
            if len(str(self.path / SOCKET_NAME)) > MAX_UNIX_PATH:
                raise ConfigError(
                    f"invalid runtime_dir = {str(self.path)!r}: the socket path would exceed {MAX_UNIX_PATH} characters"
                )
            try:
                self.path.mkdir(mode=0o700, parents=True)  # a new directory is private from the start
            except FileExistsError:
                pass  # an existing one is checked, never loosened or tightened behind the operator's back
            except OSError as exc:
                raise ConfigError(f"invalid runtime_dir = {str(self.path)!r}: {exc.strerror}") from None
            if not self.path.is_dir():
                raise ConfigError(f"invalid runtime_dir = {str(self.path)!r}: not a directory")
            info = self.path.stat()
            if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) != 0o700:
                raise ConfigError(
                    f"invalid runtime_dir = {str(self.path)!r}: must be owned by this user with mode 0700 "
                    f"(it is mode {stat.S_IMODE(info.st_mode):04o})"
                )
        self.socket_path = self.path / SOCKET_NAME
        self._claim_socket()

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.socket_path}"

    def _claim_socket(self) -> None:
        if not self.socket_path.exists():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket_path))
        except OSError:
            self.socket_path.unlink(missing_ok=True)  # left behind by a supervisor that was killed
        else:
            raise ConfigError(f"runtime_dir {str(self.path)!r} is in use by another running supervisor")
        finally:
            probe.close()

    def cleanup(self) -> None:
        """Remove the socket, and the directory when we created it; idempotent."""
        with contextlib.suppress(OSError):
            self.socket_path.unlink(missing_ok=True)
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)
