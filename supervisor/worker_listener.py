"""The router's sockets: the local ipc ROUTER, and with ``worker_listen`` a tcp ROUTER for the workers of
remote nodes, encrypted and authenticated with CurveZMQ (docs/scaling.md, docs/security.md).

Guarantees of the tcp listener:

- Only a peer whose public key is a ``*.key`` file of ``worker_allowed_keys`` completes the handshake.
  ZAP (pyzmq's ``zmq.auth`` authenticator, on a thread of its own: a busy loop delays no handshake and a
  handshake never delays the loop) answers every CURVE handshake, and the socket refuses every peer while
  no ZAP handler answers (``ZAP_ENFORCE_DOMAIN``). A refused peer never gets a message through; the
  refusal is logged with its address and key, at most once per address every ``REFUSAL_LOG_INTERVAL``.
- The directory is read again at each handshake: a key added or removed applies to the next connection
  (one already open stays until it drops; docs/scaling.md says how to cut one).
- Each message reaches the router as ``[identity, frame]`` with the identity ``links.remote_identity``:
  the name of the key the connection proved (ZAP's ``User-Id``, the file's stem) and the peer's own
  identity. A message of the ipc socket whose identity starts as a remote one is dropped, so a local
  process cannot pass for a node.
- A message over ``max_message_size`` closes its connection (``ZMQ_MAXMSGSIZE``), a handshake must end
  within ``HANDSHAKE_TIMEOUT_MS``, and a connection silent for ``TRANSPORT_HEARTBEAT_TIMEOUT_MS`` (a node
  whose host vanished without closing it) is closed by ZeroMQ's own heartbeats.

Sending is ``FrameSocket.send``: a remote identity goes to the tcp socket (``EHOSTUNREACH`` there means the
connection is gone), any other to the ipc socket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from shared.errors import ConfigError
from shared.zmqio.asyncio_socket import AsyncioZmqSocket

from .keys import allowed_keys, read_secret_key
from .links import REMOTE_MARK, remote_identity
from .router_types import FrameSocket, open_zmq_router

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

    from .config import Settings


logger = logging.getLogger("mcp_supervisor.router")

ZAP_DOMAIN = b"mcp-supervisor-workers"
HANDSHAKE_TIMEOUT_MS = 10_000
"""A connection that has not completed its CURVE handshake by then is closed."""
TRANSPORT_HEARTBEAT_IVL_MS = 2_000
TRANSPORT_HEARTBEAT_TIMEOUT_MS = 10_000
"""ZeroMQ's own PING every 2 s, and a connection without any traffic for 10 s is closed: a node whose
host lost power leaves no half-open connection behind for TCP's retransmission timeout (minutes)."""
REFUSAL_LOG_INTERVAL = 10.0
"""Seconds between two log lines about refused handshakes from one address (the others are counted)."""
REFUSALS_KEPT = 1024
"""Addresses whose refusals are counted at once; more forget them all (the counts are only for the log)."""


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """``worker_listen`` and its keys: the endpoint, the front's secret key file, the allow-list."""

    endpoint: str
    server_key: Path
    allowed_keys: Path

    def check(self) -> None:
        """Read the keys once, so that a bad file stops the start with one line.

        Raises:
            ConfigError: the secret key file or the allow-list directory is unusable.
        """
        read_secret_key(self.server_key)
        keys, skipped = allowed_keys(self.allowed_keys)
        for line in skipped:
            logger.warning("worker_allowed_keys: %s", line)
        if not keys:
            logger.warning(
                "worker_allowed_keys %s holds no node key yet: every remote worker is refused",
                self.allowed_keys,
            )


def open_worker_sockets(
    endpoint: str,
    max_message_size: int,
    on_frames: Callable[[list[bytes]], None],
    listen: ListenOptions | None,
) -> FrameSocket:
    """The router's socket, in a ZeroMQ context of its own: the ipc ROUTER at ``endpoint``, plus the tcp
    listener when ``listen`` is set, already receiving.

    Raises:
        ConfigError: the tcp endpoint cannot be bound, or its keys cannot be read.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    if listen is None:
        return WorkerSockets(context, open_zmq_router(context, endpoint, max_message_size, on_frames))

    def local(frames: list[bytes]) -> None:
        if frames[0][:1] == REMOTE_MARK:
            logger.warning("dropping a local message whose identity poses as a remote worker's")
            return
        on_frames(frames)

    try:
        public, secret = read_secret_key(listen.server_key)
        authenticator = _authenticator(context, listen.allowed_keys)
    except BaseException:
        context.term()
        raise
    try:
        remote = _bind_tcp(context, listen.endpoint, max_message_size, secret, on_frames)
    except BaseException:
        authenticator.stop()
        context.term()
        raise
    logger.info(
        "listening for remote workers on %s (CurveZMQ, server key %s, allowed keys in %s)",
        listen.endpoint, public.decode(), listen.allowed_keys,
    )  # fmt: skip
    local_socket = open_zmq_router(context, endpoint, max_message_size, local)
    return WorkerSockets(context, local_socket, remote, authenticator)


class WorkerSockets:
    """The router's ``FrameSocket``: the ipc socket, and the tcp listener when there is one (see the
    module). Without a listener ``send`` is the ipc socket's own (no dispatch on the hot path)."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        local: FrameSocket,
        remote: AsyncioZmqSocket | None = None,
        authenticator: ThreadAuthenticator | None = None,
    ) -> None:
        self._context = context
        self._local = local
        self._remote = remote
        self._authenticator = authenticator
        self.send: Callable[[list[bytes]], None] = local.send if remote is None else self._dispatch
        """Queue ``[identity, frame]`` (``FrameSocket.send``)."""

    def _dispatch(self, frames: list[bytes]) -> None:
        identity = frames[0]
        if identity[:1] == REMOTE_MARK and self._remote is not None:
            peer = identity[1:].split(REMOTE_MARK, 1)[1]
            self._remote.send([peer, *frames[1:]])
        else:
            self._local.send(frames)

    def receive_waiting(self) -> None:
        """Hand what the tcp listener has already received to the router now (``RemoteWorkers``: a peer's
        last messages are read before its connection is called lost)."""
        if self._remote is not None:
            self._remote.receive_waiting()

    def close(self) -> None:
        """Close the sockets, stop the authenticator and end the context; idempotent."""
        self._local.close()
        if self._remote is not None:
            self._remote.close()
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        if not self._context.closed:
            self._context.term()


def _bind_tcp(
    context: zmq.Context[zmq.Socket[bytes]],
    endpoint: str,
    max_message_size: int,
    secret: bytes,
    on_frames: Callable[[list[bytes]], None],
) -> AsyncioZmqSocket:
    socket = context.socket(zmq.ROUTER)
    for option, value in (
        (zmq.LINGER, 0),
        (zmq.MAXMSGSIZE, max_message_size),
        (zmq.ROUTER_MANDATORY, 1),
        (zmq.SNDHWM, 100_000),
        (zmq.RCVHWM, 100_000),
        (zmq.CURVE_SERVER, 1),
        (zmq.CURVE_SECRETKEY, secret),
        (zmq.ZAP_DOMAIN, ZAP_DOMAIN),
        (zmq.ZAP_ENFORCE_DOMAIN, 1),
        (zmq.HANDSHAKE_IVL, HANDSHAKE_TIMEOUT_MS),
        (zmq.HEARTBEAT_IVL, TRANSPORT_HEARTBEAT_IVL_MS),
        (zmq.HEARTBEAT_TIMEOUT, TRANSPORT_HEARTBEAT_TIMEOUT_MS),
    ):
        socket.setsockopt(option, value)
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as exc:
        socket.close(0)
        raise ConfigError(f"invalid worker_listen = {endpoint!r}: cannot listen there: {exc}") from None
    adapter = AsyncioZmqSocket(socket, on_frames, receive=_authenticated)
    adapter.start()
    return adapter


def _authenticated(socket: zmq.Socket[bytes]) -> list[bytes]:
    """One message of the tcp listener, its identity made ``remote_identity`` of the node its connection
    proved (a message that is not ``[identity, frame]`` is handed on as it is: the router drops it)."""
    frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
    if len(frames) != 2:
        return [frame.bytes for frame in frames]
    node = frames[1].get("User-Id")
    return [remote_identity(str(node), frames[0].bytes), frames[1].bytes]


def _authenticator(context: zmq.Context[zmq.Socket[bytes]], directory: Path) -> ThreadAuthenticator:
    """The started ZAP handler of ``context`` for ``ZAP_DOMAIN``: CURVE keys of ``directory`` only."""
    from zmq.auth.thread import ThreadAuthenticator
    from zmq.utils import z85

    class NodeAuthenticator(ThreadAuthenticator):
        """Accepts the keys of ``directory``, read at each handshake; the User-Id is the key's name."""

        def __init__(self) -> None:
            super().__init__(context, log=logging.getLogger("mcp_supervisor.zap"))
            self.address = ""
            self.accepted = ""
            self.skipped: list[str] = []
            self.refusals: dict[str, tuple[float, int]] = {}
            """address → (when its last refusal was logged, refusals not logged since)."""

        async def handle_zap_message(self, msg: list[bytes]) -> None:
            self.address = msg[3].decode(errors="replace") if len(msg) > 3 else "?"
            self.accepted = ""
            await super().handle_zap_message(msg)

        def callback(self, domain: str, key: bytes) -> bool:
            """Whether the Z85 ``key`` may connect (pyzmq's credentials-provider interface)."""
            try:
                keys, skipped = allowed_keys(directory)
            except ConfigError as exc:
                logger.error("refusing every remote worker: %s", exc)
                return False
            if skipped != self.skipped:
                self.skipped = skipped
                for line in skipped:
                    logger.warning("worker_allowed_keys: %s", line)
            name = keys.get(key)
            if name is None:
                self._log_refusal(key)
                return False
            self.accepted = name
            return True

        def curve_user_id(self, client_public_key: bytes) -> str:
            return self.accepted or z85.encode(client_public_key).decode()

        def _log_refusal(self, key: bytes) -> None:
            now = time.monotonic()
            logged, quiet = self.refusals.get(self.address, (0.0, 0))
            if logged and now - logged < REFUSAL_LOG_INTERVAL:
                self.refusals[self.address] = (logged, quiet + 1)
                return
            if len(self.refusals) > REFUSALS_KEPT:
                self.refusals.clear()
            self.refusals[self.address] = (now, 0)
            more = f" ({quiet} more refusals from there since the last line)" if quiet else ""
            logger.warning(
                "refused a remote worker from %s: its key %s is not in worker_allowed_keys (%s)%s",
                self.address, key.decode(errors="replace"), directory, more,
            )  # fmt: skip

    authenticator = NodeAuthenticator()
    authenticator.start()
    authenticator.configure_curve_callback(ZAP_DOMAIN.decode(), authenticator)
    return authenticator


def listen_options(settings: Settings) -> ListenOptions | None:
    """The router's tcp listener for remote workers, its keys checked; None without ``worker_listen``.

    Raises:
        ConfigError: a key file or the allow-list directory is unusable.
    """
    if settings.worker_listen is None:
        return None
    assert settings.worker_server_key is not None and settings.worker_allowed_keys is not None  # validated
    listen = ListenOptions(settings.worker_listen, settings.worker_server_key, settings.worker_allowed_keys)
    listen.check()
    return listen
