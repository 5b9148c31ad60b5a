"""The HTTP front's connection table: how many connections each client address holds, and which of them
are idle, so that idle sockets can never lock out a client that has a request to make.

A connection is *busy* while it has a request in progress (its headers are in, its response is not
complete) and *idle* otherwise: before its first request and between two keep-alive requests. Idle
connections cost the server a file descriptor and a little memory, nothing else, and the header
deadline (``header_timeout``) closes them soon anyway; so a new connection that finds a limit reached
closes the longest-idle connection in its way instead of being refused. Only when every connection in
its way is busy is it refused (its request gets 503).

Two limits, both on connections open at once:

- ``max_connections_per_client``: a new connection from an address already at this cap replaces that
  address's longest-idle connection. One address therefore never holds more than its share, and a
  flood from it evicts only its own idle sockets, never another client's.
- ``max_connections``: a new connection when the whole table is full replaces the longest-idle
  connection of any address.

Why not simply refuse over the cap, as uvicorn's ``limit_concurrency`` does: 1,000 sockets that never
send a byte would then hold every slot, and every real request get 503, until they go. Why not count
only busy connections: the silent ones would be bounded by nothing but the header deadline, and a local
flood opens tens of thousands per second, enough to exhaust the process's file descriptors (which the
router's and the workers' sockets need too). Evicting idle ones bounds the descriptors and keeps a slot
for whoever actually sends a request; a client whose idle keep-alive socket is evicted reconnects.

Not thread-safe: used from the supervisor's loop only. Each operation is O(1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Connection(Protocol):
    """What the table needs of a connection: a way to close it."""

    def evict(self) -> None:
        """Close the connection now (it is idle); the table has already forgotten it."""
        ...


@dataclass
class ConnectionStats:
    """What the table and the deadlines did, since start."""

    evicted: int = 0
    """Idle connections closed to make room for a new one."""
    refused: int = 0
    """New connections refused (503) because every connection in their way was busy."""
    header_timeouts: int = 0
    """Connections closed because a request's headers did not arrive within ``header_timeout``."""
    body_timeouts: int = 0
    """Connections closed because a request's body did not arrive within ``body_timeout``."""


@dataclass
class _Client:
    count: int = 0
    idle: dict[Connection, None] = field(default_factory=dict)
    """Insertion-ordered: the longest-idle connection first."""


class ConnectionTable:
    """The open connections of the front, by client address; see the module docstring for the rules."""

    def __init__(self, max_connections: int, max_per_client: int) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.stats = ConnectionStats()
        self.open = 0
        """Connections counted now (admitted and not yet removed)."""
        self._idle: dict[Connection, None] = {}
        self._clients: dict[str, _Client] = {}
        self._client_of: dict[Connection, str] = {}

    def admit(self, connection: Connection, client: str) -> str | None:
        """Count ``connection`` from address ``client``, as idle; returns ``None``, or, when there is no
        room, the one-line reason it is refused (the connection is then not counted).

        Making room evicts (``Connection.evict``) the longest-idle connection of ``client`` when the
        address is at its cap, else the longest-idle connection of all when the table is full.
        """
        entry = self._clients.get(client)
        if entry is not None and entry.count >= self.max_per_client:
            if not entry.idle:
                self.stats.refused += 1
                return (
                    f"server busy: this address has {entry.count} connections with a request in progress "
                    f"(max_connections_per_client); try again later"
                )
            self._evict(next(iter(entry.idle)))
        elif self.open >= self.max_connections:
            if not self._idle:
                self.stats.refused += 1
                return (
                    f"server busy: all {self.open} connections have a request in progress "
                    f"(max_connections); try again later"
                )
            self._evict(next(iter(self._idle)))
        if entry is None:
            entry = self._clients[client] = _Client()
        entry.count += 1
        entry.idle[connection] = None
        self._idle[connection] = None
        self._client_of[connection] = client
        self.open += 1
        return None

    def busy(self, connection: Connection) -> None:
        """A request started on ``connection``: it is never evicted until ``idle``."""
        client = self._client_of.get(connection)
        if client is not None:
            self._idle.pop(connection, None)
            self._clients[client].idle.pop(connection, None)

    def idle(self, connection: Connection) -> None:
        """``connection`` has answered its requests and waits for another: the newest idle one."""
        client = self._client_of.get(connection)
        if client is not None:
            self._idle.pop(connection, None)
            self._idle[connection] = None
            idle = self._clients[client].idle
            idle.pop(connection, None)
            idle[connection] = None

    def remove(self, connection: Connection) -> None:
        """``connection`` is closed: forget it. A no-op for one not counted (refused, or evicted)."""
        client = self._client_of.pop(connection, None)
        if client is None:
            return
        self._idle.pop(connection, None)
        entry = self._clients[client]
        entry.idle.pop(connection, None)
        entry.count -= 1
        if not entry.count:
            del self._clients[client]
        self.open -= 1

    def clients(self) -> int:
        """Addresses with a connection open now."""
        return len(self._clients)

    def _evict(self, connection: Connection) -> None:
        self.remove(connection)
        self.stats.evicted += 1
        connection.evict()
