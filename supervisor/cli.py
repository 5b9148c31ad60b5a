"""``python -m supervisor``: parse the command line, load the settings, run until stopped.

``ctl`` and ``top`` talk to a running supervisor over its control socket: they are dispatched before the
serving stack (the SDK, uvicorn, pydantic: most of a second of imports) is imported, so this module
imports it only in ``serve``. ``keys`` writes a CurveZMQ key pair and ``node`` runs workers for a remote
front (docs/scaling.md); neither imports the serving stack either.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor",
        description="Serve MCP tools from supervised asyncio and Trio worker processes.",
        epilog="Also: 'python -m supervisor ctl --help' to control a running supervisor, "
        "'python -m supervisor top' to watch one, 'python -m supervisor node --help' to run workers for a "
        "remote front, 'python -m supervisor keys --help' to make the keys it needs.",
    )
    parser.add_argument("--version", action="version", version=f"mcp-supervisor {__version__}")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--stdio", action="store_true", help="serve MCP over stdin/stdout instead of HTTP")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=str, help="TCP port (default 8001)")
    parser.add_argument("--tools", action="append", metavar="MODULE", help="tool module to load (repeatable)")
    parser.add_argument(
        "--workers-asyncio", type=str, metavar="N", help="asyncio worker processes (default 1)"
    )
    parser.add_argument("--workers-trio", type=str, metavar="N", help="Trio worker processes (default 1)")
    parser.add_argument(
        "--spare-workers",
        type=str,
        metavar="N",
        help="ready processes kept per pool to replace a dead or hung worker at once (default 1, 0: off)",
    )
    parser.add_argument(
        "--no-pin", dest="pin_cpus", action="store_false", default=None, help="do not pin workers to cores"
    )
    parser.add_argument("--log-level", help="debug, info, warning, error or critical")
    parser.add_argument("--log-format", help="text (default) or json: one JSON object per line")
    parser.add_argument("--request-timeout", type=str, metavar="SECONDS", help="longest a tool call may take")
    parser.add_argument("--max-connections", type=str, metavar="N", help="open HTTP connections")
    parser.add_argument(
        "--max-connections-per-client", type=str, metavar="N", help="open HTTP connections per client address"
    )
    parser.add_argument(
        "--header-timeout", type=str, metavar="SECONDS", help="time a connection has to send its headers"
    )
    parser.add_argument(
        "--body-timeout", type=str, metavar="SECONDS", help="time a request has to send its body"
    )
    parser.add_argument("--max-sessions", type=str, metavar="N", help="open handshake-era MCP sessions")
    parser.add_argument(
        "--session-idle-timeout", type=str, metavar="SECONDS", help="idle time that closes a session"
    )
    parser.add_argument(
        "--max-sessions-per-principal",
        type=str,
        metavar="N",
        help="open sessions of one principal (with auth)",
    )
    parser.add_argument(
        "--shutdown-grace", type=str, metavar="SECONDS", help="time in-flight calls get on stop"
    )
    parser.add_argument("--runtime-dir", help="private directory for the ipc sockets")
    parser.add_argument(
        "--worker-user", metavar="USER", help="run the workers as this user (supervisor as root)"
    )
    parser.add_argument(
        "--worker-group", metavar="GROUP", help="run the workers in this group (with --worker-user)"
    )
    parser.add_argument(
        "--task-db", metavar="PATH|URL", help="the task queue's SQLite file or postgresql:// database"
    )
    parser.add_argument(
        "--task-lease-seconds",
        type=str,
        metavar="SECONDS",
        help="on a shared PostgreSQL database, how long a running task belongs to a dead supervisor",
    )
    parser.add_argument(
        "--task-ttl", type=str, metavar="SECONDS", help="how long MCP tasks are kept after they end"
    )
    parser.add_argument(
        "--task-retention",
        type=str,
        metavar="SECONDS",
        help="how long finished queue tasks and workflows are kept",
    )
    parser.add_argument(
        "--no-task-queue",
        dest="task_queue",
        action="store_false",
        default=None,
        help="do not run the task queue",
    )
    add_auth_arguments(parser)
    parser.add_argument(
        "--worker-listen",
        metavar="tcp://ADDRESS:PORT",
        help="also take workers of remote nodes there (CurveZMQ; needs the two options below)",
    )
    parser.add_argument("--worker-server-key", metavar="FILE", help="this front's secret key file")
    parser.add_argument(
        "--worker-allowed-keys", metavar="DIR", help="directory of the public key files of allowed nodes"
    )
    return parser


AUTH_FLAGS = (
    ("public_url", "URL", "the server's public base URL behind a proxy"),
    ("auth", "MODE", "none (default), jwt or introspection"),
    ("auth_issuer", "URL", "the authorization server's issuer"),
    ("auth_audience", "URL", "the audience tokens must name (default: the public /mcp URL)"),
    ("auth_jwks_url", "URL", "the issuer's JWKS (default: from its metadata)"),
    ("auth_introspection_url", "URL", "the RFC 7662 introspection endpoint"),
    ("auth_client_id", "ID", "client id for introspection"),
    ("auth_required_scopes", "SCOPES", "comma-separated scopes every token must hold"),
    ("auth_authorization_servers", "URLS", "comma-separated authorization servers (resource metadata)"),
    ("auth_admin_scope", "SCOPE", "scope /status, /metrics and /ui need (default mcp:admin)"),
    ("rate_limit", "PER_SECOND", "requests per second per principal (0: off)"),
)
"""Flags named after their setting; the client secret is left to the file or the environment."""


def add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    """The authorization flags (docs/security.md)."""
    for key, metavar, text in AUTH_FLAGS:
        parser.add_argument("--" + key.replace("_", "-"), dest=key, metavar=metavar, help=text)
    for key, text in (
        ("auth_loopback_admin", "loopback clients reach /status, /metrics and /ui without a token"),
        ("allow_unauthenticated", "serve a non-loopback address with auth = none"),
    ):
        flag = key.replace("_", "-")
        parser.add_argument(f"--{flag}", dest=key, action="store_true", default=None, help=text)
        if key == "auth_loopback_admin":
            parser.add_argument(f"--no-{flag}", dest=key, action="store_false", help="the opposite")


def auth_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The authorization flags given, as setting overrides (lists split on commas)."""
    overrides: dict[str, Any] = {}
    for key in [key for key, _, _ in AUTH_FLAGS] + ["auth_loopback_admin", "allow_unauthenticated"]:
        value = getattr(args, key)
        if isinstance(value, str) and key in ("auth_required_scopes", "auth_authorization_servers"):
            value = [item.strip() for item in value.split(",") if item.strip()]
        overrides[key] = value
    return overrides


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ctl"]:
        from .ctl import main as ctl_main

        sys.exit(ctl_main(argv[1:]))
    if argv[:1] == ["top"]:
        from .top import main as top_main

        sys.exit(top_main(argv[1:]))
    if argv[:1] == ["keys"]:
        from .keys import main as keys_main

        sys.exit(keys_main(argv[1:]))
    if argv[:1] == ["node"]:
        from .node_cli import main as node_main

        sys.exit(node_main(argv[1:]))
    serve(argv)


def serve(argv: list[str]) -> None:
    """Serve with the settings of ``argv`` (the command line without ``ctl``/``top``); exits the process."""
    args = build_parser().parse_args(argv)  # --help and --version exit here, before the imports

    from shared.errors import ConfigError
    from shared.logformat import configure_logging

    from .app import Supervisor
    from .auth.setup import exposure_warning
    from .config_load import load_settings
    from .http_serving import bind_socket

    overrides = {
        "host": args.host,
        "port": args.port,
        "tools": args.tools,
        "workers_asyncio": args.workers_asyncio,
        "workers_trio": args.workers_trio,
        "pin_cpus": args.pin_cpus,
        "spare_workers": args.spare_workers,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "request_timeout": args.request_timeout,
        "max_connections": args.max_connections,
        "max_connections_per_client": args.max_connections_per_client,
        "header_timeout": args.header_timeout,
        "body_timeout": args.body_timeout,
        "max_sessions": args.max_sessions,
        "session_idle_timeout": args.session_idle_timeout,
        "max_sessions_per_principal": args.max_sessions_per_principal,
        "shutdown_grace": args.shutdown_grace,
        "runtime_dir": args.runtime_dir,
        "worker_user": args.worker_user,
        "worker_group": args.worker_group,
        "task_db": args.task_db,
        "task_queue": args.task_queue,
        "task_ttl": args.task_ttl,
        "task_retention": args.task_retention,
        "worker_listen": args.worker_listen,
        "worker_server_key": args.worker_server_key,
        "worker_allowed_keys": args.worker_allowed_keys,
        "task_lease_seconds": args.task_lease_seconds,
        **auth_overrides(args),
    }
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    raise_open_files_limit()
    try:
        warning = None if args.stdio else exposure_warning(settings)
        sock = None if args.stdio else bind_socket(settings.host, settings.port)
        instance = f"stdio-{os.getpid()}" if sock is None else f"http-{sock.getsockname()[1]}"
        supervisor = Supervisor(
            settings, instance, reload_settings=lambda: load_settings(args.config, overrides=overrides)
        )
    except ConfigError as exc:
        _fail(str(exc))
    if warning is not None:
        supervisor.auth_warning = warning
        logging.getLogger("mcp_supervisor").warning("%s", warning)
    try:
        code = _run(supervisor.run_stdio() if sock is None else supervisor.run_http(sock))
    except ConfigError as exc:  # the worker listener cannot bind: before any worker started
        supervisor.runtime_dir.cleanup()
        _fail(str(exc))
    sys.exit(code)


def raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one: every connection and worker pipe is a file,
    and the usual soft limit (1024) is below the default max_connections."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass  # a container that forbids it: the soft limit stays, and is reported by /status (open_fds)


def _run(coroutine: Coroutine[Any, Any, int]) -> int:
    try:  # uvloop is optional: a faster loop when it is installed
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _fail(message: str) -> NoReturn:
    from shared.exits import EXIT_STARTUP

    print(f"mcp-supervisor: error: {message}", file=sys.stderr)
    sys.exit(EXIT_STARTUP)
