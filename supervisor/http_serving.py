"""The front's listening socket and the uvicorn server that serves the HTTP app on it.

uvicorn here has no signal handling of its own (the supervisor's loop owns the signals), serves through
the guarded protocol (``front_protocol``), and waits on a stop for longer than the supervisor's own stop
takes, so that the supervisor decides what a stop cut (``Supervisor._finish``).
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from shared.errors import ConfigError

from .config import Settings
from .connections import ConnectionTable
from .draining import STOP_WAIT
from .front_protocol import guarded_protocol

FRONT_LINGER = 1.0
"""After the calls are drained, how long the front may take to close its connections by itself."""
UVICORN_SHUTDOWN_SLACK = 2 * STOP_WAIT + 2 * FRONT_LINGER + 1.0
"""How much longer than ``shutdown_grace`` uvicorn may wait for requests to end: past the drain, the
workers' STOP (and SIGKILL) and the front's linger, so that uvicorn never cancels a call first."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket, bound before any worker starts so that a busy port fails fast.

    Raises:
        ConfigError: one line naming the address and the reason.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"invalid host = {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use; stop the other server or choose another --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: the supervisor's loop owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: ASGIApp, settings: Settings, connections: ConnectionTable) -> uvicorn.Server:
    """The uvicorn server ``run_http`` runs ``app`` on, with every module it serves with imported: its
    connections counted in ``connections`` under the header and body deadlines (``front_protocol``)."""
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,
        http=guarded_protocol(connections, settings.header_timeout, settings.body_timeout),
        ws="none",  # MCP has no WebSocket transport: no library, and an upgrade would leave the table
        limit_concurrency=None,  # the connection table counts connections instead (connections.py)
        # never before the supervisor's own stop (Supervisor._finish): the calls get the whole grace and
        # the arbiter, not uvicorn, decides what was cut; what is left on the front is then cancelled
        timeout_graceful_shutdown=settings.shutdown_grace + UVICORN_SHUTDOWN_SLACK,  # type: ignore[arg-type]
        server_header=False,
        proxy_headers=False,  # the loopback admin exception reads the client address: no X-Forwarded-*
    )
    config.load()  # the imports uvicorn would make in serve(), made now so that the heap's freeze covers them
    return _UvicornServer(config)
