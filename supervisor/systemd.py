"""systemd's notify protocol (``Type=notify``), spoken directly: one datagram per message to the socket
named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``). No C library.

The supervisor sends ``READY=1`` once its workers are ready, a one-line ``STATUS=``, ``WATCHDOG=1`` at
half of ``$WATCHDOG_USEC`` while its loop runs, ``RELOADING=1`` with ``MONOTONIC_USEC`` around a reload
and ``STOPPING=1`` when it stops. Workers never see these variables (``process.py`` removes them).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger("mcp_supervisor.systemd")


class Notifier:
    """Sends notify messages; every method is a no-op when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if path.startswith("@"):
            self._address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self._address = path
        self._socket: socket.socket | None = None
        self._failed = False
        usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> None:
        """Send ``fields`` as one datagram (newline-separated ``KEY=value``); never raises."""
        if self._address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            if not self._failed:  # say it once, not at every watchdog tick
                logger.warning("cannot notify systemd at %r: %s", self._address, exc)
                self._failed = True

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def reloading(self) -> None:
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
