"""Configuration: defaults < TOML file (``--config``) < environment (``MCP_SUPERVISOR_<KEY>``) < flags.

Every value is validated once, at start; a bad one stops the supervisor with ``ConfigError`` and one line
naming the key, the value, where it came from and what is allowed.

The TOML file uses top-level keys for the server and two tables::

    host = "127.0.0.1"
    port = 8001
    request_timeout = 300

    [workers]
    asyncio = 1      # -> workers_asyncio
    trio = 1         # -> workers_trio

    [tools]
    modules = ["my_company.tools"]   # -> tools
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from shared import dburl
from shared.errors import ConfigError
from shared.protocol import DEFAULT_MAX_MESSAGE_SIZE, HEARTBEAT_INTERVAL

from .containment import DEFAULT_WORKER_ENV
from .keys import check_name
from .worker_user import lookup_group, lookup_user

ENV_PREFIX = "MCP_SUPERVISOR_"
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})
MIN_DEFAULT_WORKER_RSS = 256 * 1024 * 1024
"""The default ``max_worker_rss`` never goes below this (a Python worker with its tools loaded uses ~60 MB)."""
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Settings(BaseModel):
    """Every setting of the supervisor, with its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", min_length=1, description="address to listen on (loopback by default)")
    port: int = Field(8001, ge=0, le=65535, description="TCP port of the HTTP front (0 picks a free one)")
    max_connections: int = Field(
        1000, ge=1, le=1_000_000, description="open HTTP connections; idle ones make room for new ones"
    )
    max_connections_per_client: int = Field(
        100, ge=1, le=1_000_000, description="open HTTP connections from one client address"
    )
    header_timeout: float = Field(
        10.0, gt=0, le=3600, description="seconds a connection has to send a request's headers"
    )
    body_timeout: float = Field(
        30.0, gt=0, le=3600, description="seconds a request has to send its body after its headers"
    )
    max_sessions: int = Field(
        1000, ge=1, le=1_000_000, description="open handshake-era (2025-11-25) MCP sessions"
    )
    session_idle_timeout: float = Field(
        600.0, gt=0, le=86400, description="seconds a handshake-era session may stay idle before it is closed"
    )
    max_sessions_per_principal: int = Field(
        100, ge=1, le=1_000_000, description="open handshake-era sessions of one principal (with auth)"
    )
    request_timeout: float = Field(300.0, gt=0, le=86400, description="longest a tool call may take, seconds")
    enable_metrics: bool = Field(True, description="serve /metrics (Prometheus text format)")
    fast_path: bool = Field(
        True, description="answer stateless tools/call and tools/list without the SDK's per-request work"
    )
    workers_asyncio: int = Field(1, ge=0, le=256, description="asyncio worker processes")
    workers_trio: int = Field(1, ge=0, le=256, description="Trio worker processes")
    pin_cpus: bool = Field(True, description="pin each worker to its own CPU core")
    spare_workers: int = Field(
        1,
        ge=0,
        le=16,
        description="ready processes kept per pool to replace a worker that dies or hangs at once (0: off)",
    )
    tools: tuple[str, ...] = Field(
        (), description="tool modules to import in the workers: dotted names or paths of .py files"
    )
    task_queue: bool = Field(True, description="run the task-queue worker (trio-queue) and its 20 tools")
    task_db: str | None = Field(
        None,
        description="the task database: a SQLite file (default: in the user's state directory) or a "
        "postgresql:// URL shared by several supervisors",
    )
    task_ttl: float = Field(
        3600.0,
        ge=0,
        le=10 * 365 * 86400,
        description="seconds MCP tasks are kept after they end (0: forever)",
    )
    task_retention: float = Field(
        604800.0,
        ge=0,
        le=10 * 365 * 86400,
        description="seconds finished queue tasks and workflows are kept (0: forever)",
    )
    task_lease_seconds: float = Field(
        30.0,
        ge=0.5,
        le=3600,
        description="on PostgreSQL, seconds a running task stays with a supervisor that stopped renewing it",
    )
    workflow_step_max_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=1 << 30,
        description="largest input or output of one workflow step, as JSON bytes; a step over it fails",
    )
    log_level: LogLevel = "info"
    log_format: Literal["text", "json"] = Field("text", description="text, or one JSON object per line")
    shutdown_grace: float = Field(
        10.0, ge=0, le=3600, description="seconds in-flight calls get to finish on stop"
    )
    runtime_dir: Path | None = Field(
        None, description="private directory for ipc sockets (default: a new one)"
    )
    max_message_size: int = Field(
        DEFAULT_MAX_MESSAGE_SIZE, ge=4096, le=1 << 30, description="router frame limit"
    )
    max_body_size: int = Field(4 * 1024 * 1024, ge=1024, le=1 << 30, description="HTTP request body limit")
    max_in_flight_per_worker: int = Field(
        256, ge=1, le=1_000_000, description="calls one worker runs at once"
    )
    max_queued_calls: int = Field(
        1024, ge=0, le=10_000_000, description="calls that may wait for room; more are busy"
    )
    max_worker_rss: int | None = Field(
        None,
        ge=0,
        description="recycle a worker above this resident memory, bytes (0: off; default: a quarter of "
        "the memory shared by the workers, at least 256 MiB)",
    )
    worker_env: tuple[str, ...] = Field(
        DEFAULT_WORKER_ENV, description="environment variables the workers get (names, or prefixes NAME*)"
    )
    worker_rlimit_nofile: int = Field(
        8192, ge=64, le=1 << 20, description="open files a worker may have (RLIMIT_NOFILE)"
    )
    worker_rlimit_as: int | None = Field(
        None, ge=1 << 26, description="address space a worker may map, bytes (RLIMIT_AS; default: no cap)"
    )
    worker_user: str | None = Field(
        None, min_length=1, description="user the workers run as when the supervisor starts as root"
    )
    worker_group: str | None = Field(
        None, min_length=1, description="group the workers run as (default: worker_user's primary group)"
    )
    worker_threads: int = Field(8, ge=1, le=1024, description="thread pool size for sync tools, per worker")
    heartbeat_interval: float = Field(
        HEARTBEAT_INTERVAL, gt=0, le=60, description="seconds between heartbeats"
    )
    restart_backoff_initial: float = Field(0.1, gt=0, le=60, description="first restart delay, seconds")
    restart_backoff_max: float = Field(30.0, gt=0, le=3600, description="longest restart delay, seconds")
    restart_backoff_reset: float = Field(
        10.0, gt=0, le=86400, description="uptime that resets the backoff, seconds"
    )
    flap_deaths: int = Field(
        5,
        ge=1,
        le=10_000,
        description="deaths with no tool call in flight within flap_window that mark a worker failed",
    )
    flap_window: float = Field(60.0, gt=0, le=86400, description="flapping window, seconds")
    flap_cooldown: float = Field(
        60.0, gt=0, le=86400, description="rest of a failed worker before a new try, seconds"
    )
    quarantine_deaths: int = Field(
        3,
        ge=0,
        le=10_000,
        description="worker deaths within flap_window with a tool in flight that quarantine it (0: never)",
    )
    quarantine_seconds: float = Field(
        300.0, gt=0, le=7 * 86400, description="how long a quarantined tool is refused, seconds"
    )
    allowed_hosts: tuple[str, ...] = Field((), description="extra Host header values accepted")
    allowed_origins: tuple[str, ...] = Field((), description="extra Origin header values accepted")
    state_keys: tuple[str, ...] = Field(
        (),
        repr=False,
        description="request-state keys of 32+ characters, the first seals (default: one in the state directory)",
    )
    request_state_ttl: float = Field(
        600.0, gt=0, le=86400, description="seconds a client may take to answer an input request"
    )
    list_page_size: int = Field(
        500,
        ge=1,
        le=100_000,
        description="entries per page of tools/list, resources/list and the other lists",
    )

    public_url: str | None = Field(
        None, description="the server's public base URL behind a proxy (default: http://host:port)"
    )
    auth: Literal["none", "jwt", "introspection"] = Field(
        "none", description="how /mcp authenticates bearer tokens: none, jwt or introspection"
    )
    auth_issuer: str | None = Field(None, description="the authorization server's issuer URL")
    auth_audience: str | None = Field(
        None, description="the audience tokens must name (default: the public /mcp URL)"
    )
    auth_jwks_url: str | None = Field(
        None, description="the issuer's JWKS URL (default: from the issuer's metadata)"
    )
    auth_introspection_url: str | None = Field(None, description="the RFC 7662 introspection endpoint")
    auth_client_id: str | None = Field(None, description="client id for token introspection")
    auth_client_secret: str | None = Field(
        None, repr=False, description="client secret for token introspection"
    )
    auth_required_scopes: tuple[str, ...] = Field((), description="scopes every token must hold")
    auth_authorization_servers: tuple[str, ...] = Field(
        (), description="authorization servers in the resource metadata (default: [auth_issuer])"
    )
    auth_admin_scope: str = Field(
        "mcp:admin", min_length=1, description="scope /status, /metrics and /ui need when auth is on"
    )
    auth_loopback_admin: bool | None = Field(
        None,
        description="loopback clients reach /status, /metrics and /ui without a token "
        "(default: true only when bound to loopback)",
    )
    rate_limit: float = Field(
        0.0, ge=0, le=1_000_000, description="requests per second per principal (0: off)"
    )
    allow_unauthenticated: bool = Field(False, description="serve a non-loopback address with auth = none")

    worker_listen: str | None = Field(
        None, description="tcp://ADDRESS:PORT where the router also takes workers of remote nodes (CurveZMQ)"
    )
    worker_server_key: Path | None = Field(
        None, description="this front's secret key file for worker_listen (python -m supervisor keys)"
    )
    worker_allowed_keys: Path | None = Field(
        None, description="directory of the public key files (NAME.key) of the nodes allowed to connect"
    )
    node_connect: str | None = Field(None, description="node: tcp://HOST:PORT of the front's worker_listen")
    node_server_key: Path | None = Field(None, description="node: the front's public key file (NAME.key)")
    node_key: Path | None = Field(None, description="node: this node's secret key file (NAME.key_secret)")
    node_name: str | None = Field(
        None, description="node: its name on the front, its key file's name there (default: node_key's stem)"
    )

    @pydantic.field_validator("tools")
    @classmethod
    def _module_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Dotted module names, or paths of ``.py`` files made absolute (the workers may not share the
        working directory the path was written for)."""
        names = []
        for name in value:
            if name.endswith(".py"):
                path = Path(name).expanduser()
                if not path.stem.isidentifier():
                    raise ValueError(f"{name!r}: a tool file's name must be a Python identifier + .py")
                names.append(str(path.absolute()))
            elif not name or not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"{name!r} is not a dotted Python module name nor a .py file")
            else:
                names.append(name)
        return tuple(names)

    @pydantic.field_validator("task_db", mode="before")
    @classmethod
    def _task_database_path(cls, value: Any) -> Any:
        """A ``pathlib.Path`` (from Python callers) is a path like any other."""
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @pydantic.field_validator("task_db")
    @classmethod
    def _task_database(cls, value: str | None) -> str | None:
        """A ``postgresql://`` URL as given; anything else is a path (``~`` expanded)."""
        if value is None:
            return None
        if not value.strip():
            raise ValueError("must be a path or a postgresql:// URL, not empty")
        if dburl.is_url(value):
            try:
                dburl.split_password(value)
            except ValueError as exc:
                raise ValueError(f"not a valid URL: {exc}") from None
            return value
        if value.lower().startswith(("postgres:", "postgresql:")):
            raise ValueError("a PostgreSQL database is named by a postgresql://... URL")
        return str(Path(value).expanduser())

    @pydantic.field_validator("worker_env")
    @classmethod
    def _variable_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            name = entry.removesuffix("*")
            if not name or "*" in name or "=" in name or not name.isprintable() or " " in name:
                raise ValueError(f"{entry!r} is not a variable name or a NAME* prefix")
        return value

    @pydantic.field_validator("worker_user", "worker_group", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @pydantic.field_validator("worker_user")
    @classmethod
    def _existing_user(cls, value: str | None) -> str | None:
        if value is not None and lookup_user(value).pw_uid == 0:
            raise ValueError("the workers cannot run as root through worker_user: it is there to leave root")
        return value

    @pydantic.field_validator("worker_group")
    @classmethod
    def _existing_group(cls, value: str | None) -> str | None:
        if value is not None:
            lookup_group(value)
        return value

    @pydantic.field_validator("state_keys")
    @classmethod
    def _long_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, key in enumerate(value):
            if len(key) < 32:
                raise ValueError(f"key {index} has {len(key)} characters, fewer than 32")
        return value

    @pydantic.field_validator("worker_listen", "node_connect")
    @classmethod
    def _tcp_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.removeprefix("tcp://").rpartition(":")
            if not value.startswith("tcp://") or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be tcp://HOST:PORT")
        return value

    @pydantic.field_validator("node_name")
    @classmethod
    def _node_name(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_name(value)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix(f"invalid name {value!r}: ")) from None
        return value

    @pydantic.model_validator(mode="after")
    def _listen_keys(self) -> Settings:
        if self.worker_listen and not (self.worker_server_key and self.worker_allowed_keys):
            raise ValueError(
                "worker_listen needs worker_server_key (this front's secret key file) and "
                "worker_allowed_keys (a directory of the nodes' public key files)"
            )
        return self

    @pydantic.model_validator(mode="after")
    def _backoff_order(self) -> Settings:
        if self.restart_backoff_max < self.restart_backoff_initial:
            raise ValueError(
                f"restart_backoff_max ({self.restart_backoff_max:g}) must not be below "
                f"restart_backoff_initial ({self.restart_backoff_initial:g})"
            )
        return self

    @pydantic.model_validator(mode="after")
    def _body_fits_a_frame(self) -> Settings:
        # a request body becomes a CALL frame with some framing around it: a body the front accepts must
        # not make a frame the router drops
        if self.max_body_size >= self.max_message_size:
            raise ValueError(
                f"max_body_size ({self.max_body_size}) must be below max_message_size "
                f"({self.max_message_size}): a request body travels to the worker in one message"
            )
        return self

    @pydantic.model_validator(mode="after")
    def _worker_user_complete(self) -> Settings:
        if self.worker_group is not None and self.worker_user is None:
            raise ValueError("worker_group needs worker_user")
        if self.worker_user is not None and self.task_queue and self.task_db is None:
            raise ValueError(
                "worker_user needs task_db: the task queue's database must be in a folder of that user "
                "(the default one, in the supervisor's state directory, is closed to it)"
            )
        return self

    @pydantic.model_validator(mode="after")
    def _auth_complete(self) -> Settings:
        if self.auth == "jwt" and not self.auth_issuer:
            raise ValueError("auth = jwt needs auth_issuer")
        if self.auth == "introspection" and not (
            self.auth_introspection_url and self.auth_client_id and self.auth_client_secret
        ):
            raise ValueError(
                "auth = introspection needs auth_introspection_url, auth_client_id and auth_client_secret"
            )
        for key in ("public_url", "auth_issuer", "auth_audience", "auth_jwks_url", "auth_introspection_url"):
            value = getattr(self, key)
            if value is not None and not _http_url(value):
                raise ValueError(f"{key} = {value!r} is not an http(s) URL with a host")
        return self

    @property
    def loopback_bound(self) -> bool:
        """Whether the front listens on a loopback address only."""
        return self.host in LOOPBACK_ADDRESSES or self.host.startswith("127.")

    @property
    def base_url(self) -> str:
        """The server's public base URL, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def audience(self) -> str:
        """The audience a token must name: ``auth_audience``, else the public ``/mcp`` URL."""
        return self.auth_audience or f"{self.base_url}/mcp"

    @property
    def loopback_admin(self) -> bool:
        """Whether loopback clients reach /status and /metrics without a token."""
        return self.loopback_bound if self.auth_loopback_admin is None else self.auth_loopback_admin

    def worker_counts(self) -> dict[str, int]:
        return {"asyncio": self.workers_asyncio, "trio": self.workers_trio}

    def worker_rss_limit(self, total_memory: int) -> int:
        """``max_worker_rss``, or its default on a machine with ``total_memory`` bytes: a quarter of the
        memory shared by the worker processes, at least ``MIN_DEFAULT_WORKER_RSS``; 0 means off."""
        if self.max_worker_rss is not None:
            return self.max_worker_rss
        workers = max(1, sum(self.worker_counts().values()) + int(self.task_queue))
        return max(MIN_DEFAULT_WORKER_RSS, total_memory // 4 // workers)


def _http_url(value: str) -> bool:
    """Whether ``value`` is an http(s) URL naming a host (and a valid port, if any)."""
    if not value.startswith(("http://", "https://")):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number in range)
    except ValueError:
        return False
    return bool(parts.hostname)
